#!/usr/bin/env bash
# GPU check for colorize-rt: build TensorRT engines for the exported models, compare their output with
# ONNX Runtime (max |Δab| and the paper's rebalanced AuC) and time both. Run it on a machine with an
# NVIDIA GPU and `pip install 'colorize-rt[gpu]'` (TensorRT 10/11; device buffers come from torch with
# CUDA if present, else cuda-python).
#
#   benchmarks/gpu_check.sh [EXPORT_DIR] [VAL_DIR] [PROFILE]
#     EXPORT_DIR  folder with model.onnx / model.fp16.onnx / model.int8.onnx (default build/export,
#                 as written by `make export-trt`)
#     VAL_DIR     colour images for the comparison (default ../shared/data/colorize-train/val)
#     PROFILE     rtx3060-6gb | rtx3060-12gb (default rtx3060-6gb); or PROFILE=custom MEMORY_GIB=24
#   Environment: PY (python, default .venv/bin/python), N_IMAGES (default 50), MEMORY_GIB.
set -euo pipefail
DIR=${1:-build/export}
VAL=${2:-../shared/data/colorize-train/val}
PROFILE=${3:-${PROFILE:-rtx3060-6gb}}
PY=${PY:-.venv/bin/python}
N_IMAGES=${N_IMAGES:-50}

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "no NVIDIA GPU (nvidia-smi not found): run this on the machine with the GPU"; exit 3
fi
if ! "$PY" -c "import tensorrt" 2>/dev/null; then
  echo "TensorRT is not installed: install tensorrt on a machine with an NVIDIA GPU (pip install 'colorize-rt[gpu]')"; exit 3
fi
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader

EXTRA=()
if [ "$PROFILE" = custom ]; then EXTRA=(--memory-gib "${MEMORY_GIB:?set MEMORY_GIB for PROFILE=custom}"); fi
MODELS=()
for m in model model.fp16 model.int8; do
  if [ -f "$DIR/$m.onnx" ]; then
    "$PY" -c "from colorize_rt.export.cli import engine_main; engine_main()" "$DIR/$m.onnx" --profile "$PROFILE" "${EXTRA[@]}" \
      -o "$DIR/$m.$PROFILE.engine"
    MODELS+=("$m")
  fi
done
[ ${#MODELS[@]} -gt 0 ] || { echo "no ONNX models in $DIR: run 'make export-trt' first"; exit 2; }

"$PY" - "$DIR" "$VAL" "$PROFILE" "$N_IMAGES" "${MODELS[@]}" <<'PYEOF'
import sys
import time
from pathlib import Path

import numpy as np
import tensorrt as trt

from colorize_rt.evaluation import evaluate, iter_lab_images, list_images, onnx_predictor
from colorize_rt.export.tensorrt_engine import verify_engine
from colorize_rt.runtime.runners import OrtRunner, Runner, predict_ab

out_dir, val, profile, n_images, models = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]


class Buffers:
    """Device memory through torch (CUDA) or cuda-python."""

    def __init__(self):
        try:
            import torch

            if not torch.cuda.is_available():
                raise ImportError
            self.torch = torch
        except ImportError:
            self.torch = None
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart
            self.cudart = cudart

    def to_device(self, a):
        if self.torch is not None:
            t = self.torch.from_numpy(np.ascontiguousarray(a)).cuda()
            return t, t.data_ptr()
        err, ptr = self.cudart.cudaMalloc(a.nbytes)
        self.cudart.cudaMemcpy(ptr, a.ctypes.data, a.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
        return ptr, ptr

    def empty(self, shape):
        return self.to_device(np.empty(shape, np.float32))

    def to_host(self, handle, shape):
        if self.torch is not None:
            return handle.cpu().numpy()
        a = np.empty(shape, np.float32)
        self.cudart.cudaMemcpy(a.ctypes.data, handle, a.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)
        return a

    def free(self, handle):
        if self.torch is None:
            self.cudart.cudaFree(handle)

    def sync(self):
        if self.torch is not None:
            self.torch.cuda.synchronize()
        else:
            self.cudart.cudaDeviceSynchronize()


class TrtRunner(Runner):
    name = "tensorrt"

    def __init__(self, engine_path):
        super().__init__()
        self.engine_path = Path(engine_path)

    def activate_impl(self):
        self.sidecar = verify_engine(self.engine_path)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        runtime.engine_host_code_allowed = bool(self.sidecar.get("version_compatible"))
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        self.ctx = self.engine.create_execution_context()
        self.buf = Buffers()
        self.profiles = self.sidecar["inputs"]["L"]["profiles"]
        self.has_t = "temperature" in self.sidecar["inputs"]
        self.current = None

    def infer_impl(self, feed):
        L = feed["L"].astype(np.float32)
        idx = next(i for i, p in enumerate(self.profiles)
                   if all(lo <= s <= hi for lo, s, hi in zip(p["min"], L.shape, p["max"], strict=True)))
        if idx != self.current:
            self.ctx.set_optimization_profile_async(idx, 0)
            self.current = idx
        keep = []
        h, ptr = self.buf.to_device(L)
        keep.append(h)
        self.ctx.set_input_shape("L", L.shape)
        self.ctx.set_tensor_address("L", ptr)
        if self.has_t:
            t = np.asarray(feed.get("temperature", self.sidecar["default_temperature"]), np.float32)
            h, ptr = self.buf.to_device(t)
            keep.append(h)
            self.ctx.set_tensor_address("temperature", ptr)
        shape = (L.shape[0], 2, L.shape[2], L.shape[3])
        out, ptr = self.buf.empty(shape)
        self.ctx.set_tensor_address("ab", ptr)
        if not self.ctx.execute_async_v3(0):
            raise RuntimeError("TensorRT execution failed")
        self.buf.sync()
        ab = self.buf.to_host(out, shape)
        for h in [*keep, out]:
            self.buf.free(h)
        return {"ab": ab}


def timeit(runner, L, reps=30):
    feed = {"L": L, "temperature": np.array(0.38, np.float32)}
    for _ in range(3):
        runner.infer(feed)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        runner.infer(feed)
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


files = list_images(val, n_images)
print(f"TensorRT {trt.__version__}; {len(files)} images from {val}; profile {profile}")
print(f"{'model':<12} {'max|dab|':>9} {'AuC ORT':>8} {'AuC TRT':>8} {'ORT ms 256':>11} {'TRT ms 256':>11} "
      f"{'TRT ms 8x512':>13}")
for m in models:
    onnx_path = out_dir / f"{m}.onnx"
    trt_runner = TrtRunner(out_dir / f"{m}.{profile}.engine").activate()
    ort_runner = OrtRunner(onnx_path).activate()
    worst = 0.0
    for _, lab in iter_lab_images(files):
        L = lab[..., 0]
        worst = max(worst, float(np.abs(predict_ab(trt_runner, L) - predict_ab(ort_runner, L)).max()))
    res = evaluate(files, {"ort": onnx_predictor(onnx_path), "trt": lambda L, r=trt_runner: predict_ab(r, L)},
                   progress=False)["methods"]
    L256 = np.full((1, 1, 256, 256), 50.0, np.float32)
    tiles = np.full((8, 1, 512, 512), 50.0, np.float32)
    tiles_max = trt_runner.profiles[-1]["max"][0]
    ms_tiles = timeit(trt_runner, tiles[: min(8, tiles_max)]) if tiles_max else float("nan")
    print(f"{m:<12} {worst:9.3f} {res['ort']['auc_rebal']:8.2f} {res['trt']['auc_rebal']:8.2f} "
          f"{timeit(ort_runner, L256, 10):11.2f} {timeit(trt_runner, L256):11.2f} {ms_tiles:13.2f}")
PYEOF
