#!/usr/bin/env bash
# Every GPU check of the project in one script, for one GPU machine (H100 or H200): the device
# name, the throughput benchmark at the paper's widths (ours against the eager fp32 reference,
# and the device-hours of config/paper.yaml), bf16 against fp32 accuracy on the synthetic
# benchmark, and a short real training run that records GPU utilisation per epoch.
# Writes everything under ${OUT:-results/benchmarks}.
#   bash benchmarks/gpu_checks.sh
set -euo pipefail
out=${OUT:-results/benchmarks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -m pln.cli bench --device cuda --bf16 --steps 10 --warmup 3 --out "$out/cuda.csv" 2>&1 | tee "$out/bench-cuda.log"
python benchmarks/precision.py --device cuda --seeds 0 1 2 --out "$out/precision-cuda.csv" 2>&1 | tee "$out/precision-cuda.log"
python -m pln.cli train config/examples/synthetic-tacos.yaml --out /tmp/pln-gpu-util \
  --set train.device=cuda --set train.bf16=true --set data.synthetic.scale=4 --set train.max_epochs=3 \
  --set model.hidden=512 --set model.conv_channels=512 --set model.num_units=256 --set model.clips=[32,128] \
  2>&1 | tail -n 3
cp /tmp/pln-gpu-util/epochs.csv "$out/gpu-util-epochs.csv"
echo "GPU checks done: $out"
