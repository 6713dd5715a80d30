#!/usr/bin/env bash
# The GPU check (issue 19), for whoever has a GPU at hand: the CUDA tests, then the device benchmark
# (networks an hour for LeNet-300-100 one at a time and stacked, and Conv-2), each under its own time
# limit, in under 8 minutes in all; everything it prints and measures goes to one folder:
#   bash tools/gpu_check.sh [OUT]            (default: $OUT, else _build/gpu_check)
# It needs torch with CUDA, pytest, pandas, pyyaml and tqdm (the repo's .venv, or a python3 that has them:
# PY=python3 bash tools/gpu_check.sh). The benchmark reads real MNIST and CIFAR-10 under data/ when they are
# there and random data of the same shapes otherwise (--synthetic; the rates do not depend on the pixels).
# GPU_CHECK_DEVICE=cpu runs the same on the CPU (a dry run of this script on a machine without a GPU).
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-_build/gpu_check}}
mkdir -p "$out"
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
device=${GPU_CHECK_DEVICE:-cuda}
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
{
  echo "date: $(date -u +%FT%TZ)"
  echo "code_version: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)"
  echo "device: $device"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
} > "$out/conditions.txt" 2>&1
data_flag=--synthetic
if [ -d data/mnist ] && [ -d data/cifar10 ]; then data_flag=; fi
LT_TEST_DEVICE=$device timeout 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$out/cuda_tests.txt" 2>&1
echo "exit status $?" >> "$out/cuda_tests.txt"
sizes="--repeats 3 --steps 2000 --conv-steps 200 --stack 2,4,8,16"
if [ "$device" = cpu ]; then sizes="--quick --stack 2"; fi  # the dry run: seconds, not minutes
timeout 300 "$PY" -m lt_core bench --cases device --device "$device" $data_flag $sizes \
  --out "$out/bench_device.json" > "$out/bench_device.log" 2>&1
echo "exit status $?" >> "$out/bench_device.log"
tail -n 3 "$out/cuda_tests.txt" "$out/bench_device.log"
