#!/usr/bin/env bash
# GPU check for colorize-rt (`make gpu-check`): under 8 minutes on one NVIDIA GPU.
#
#   benchmarks/gpu_check.sh [--only train buffers torch tensorrt] [--out DIR]
#
# Needs PyTorch with CUDA (pip install -e '.[train]' with a CUDA torch) and, for the buffer-path step,
# cuda-python; TensorRT (the gpu-cu12 / gpu-cu13 extra) only for the engine step, onnxruntime-gpu not at
# all. Steps: fp16 AMP training smoke with checkpoint + resume; the TensorRT runner's cuda-python buffer
# path around a pure-CUDA stand-in engine; PyTorch fp16/fp32 latency of PaperNet and the default model
# (CUDA events on a non-default stream); where TensorRT exists, engine build + run + comparison with
# ONNX Runtime CPU. Results: benchmarks/results/gpu/<gpu>/gpu_check.{json,md}. See benchmarks/gpu_check.py.
#   Environment: PY (python, default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "no NVIDIA GPU (nvidia-smi not found): run this on the machine with the GPU"; exit 3
fi
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
exec timeout 475 "$PY" -m benchmarks.gpu_check "$@"
