"""Native TensorRT engine runner (TensorRT 10/11 Python API, device memory through cuda-python).

cuda-python (``cuda.bindings``) is used for device buffers and streams rather than pycuda: it ships binary
wheels and is what NVIDIA's own TensorRT samples use now, whereas pycuda is sdist-only and needs a CUDA
toolkit to build. Both ``tensorrt`` and ``cuda.bindings`` are imported lazily, on ``activate()``.

An engine is only valid for the TensorRT version and GPU it was built for. ``colorize-engine`` writes a
JSON sidecar ``<engine>.json`` ({tensorrt_version, gpu_name, compute_capability, profile, precision,
onnx_sha256}); the runner refuses an engine whose sidecar does not match this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.lazy import require
from .runners import Runner


class EngineMismatch(RuntimeError):
    """The engine was built for another TensorRT version or GPU; the message says to rebuild it."""


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError:
            require("cuda.bindings")  # raises MissingDependency with the pip hint
            raise
    return cudart


def _check(result):
    """cuda-python calls return (err, *values); raise on error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else tuple(rest)


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def check_engine_compat(
    sidecar: dict,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    engine_name: str = "engine",
) -> None:
    """Raise ``EngineMismatch`` (one line, says how to rebuild with colorize-engine) when the sidecar's
    TensorRT version or GPU does not match this machine. The rules (version-compatible and
    hardware-compatible engines included) are the engine builder's own ``check_sidecar``."""
    from ..export.tensorrt_engine import check_sidecar, rebuild_hint

    cc = ".".join(str(int(v)) for v in compute_capability)
    sidecar = {"format": 1, **sidecar}
    problems = check_sidecar(sidecar, tensorrt_version=str(trt_version), gpu_name=gpu_name.strip(), compute_capability=cc)
    if problems:
        raise EngineMismatch(
            f"{engine_name} does not match this machine: {'; '.join(problems)}; {rebuild_hint(engine_name, sidecar)}"
        )


class TrtRunner(Runner):
    """Runs a serialized TensorRT engine with dynamic shapes; picks the optimization profile whose range
    holds the input (the builder makes a ``single`` whole-image and a ``tiles`` batched profile) and splits
    batches larger than a profile allows."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, check_sidecar: bool = True):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.check_sidecar = check_sidecar
        self.engine = self.context = self.stream = None
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity bytes)
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._profiles: list[tuple[tuple, tuple]] = []  # (min, max) of "L" per profile
        self._profile = 0
        self.device_name = ""

    # -- lifecycle ---------------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        trt = require("tensorrt")
        cudart = _cudart()
        props = _check(cudart.cudaGetDeviceProperties(0))
        raw = props.name
        name = raw.decode(errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
        self.device_name = name = name.rstrip("\x00").strip()
        side = sidecar_path(self.engine_path)
        sidecar = json.loads(side.read_text()) if side.is_file() else {}
        if self.check_sidecar and sidecar:
            check_engine_compat(sidecar, trt.__version__, name, (props.major, props.minor), str(self.engine_path))
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        if sidecar.get("version_compatible"):
            self._runtime.engine_host_code_allowed = True
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EngineMismatch(
                f"{self.engine_path} could not be deserialized by TensorRT {trt.__version__} on {name}: "
                f"rebuild it on this machine with colorize-engine"
            )
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        for i in range(self.engine.num_io_tensors):
            t = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(t) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(t)
        if "L" in self._inputs:
            for k in range(self.engine.num_optimization_profiles):
                lo, _, hi = self.engine.get_tensor_profile_shape("L", k)
                self._profiles.append((tuple(lo), tuple(hi)))
        self._profile = 0
        self._trt = trt
        self._cudart = cudart

    def deactivate_impl(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is not None:
            for ptr, _ in self._buffers.values():
                cudart.cudaFree(ptr)
            if self.stream is not None:
                cudart.cudaStreamDestroy(self.stream)
        self._buffers.clear()
        self._profiles.clear()
        self.context = self.engine = self.stream = None

    # -- inference ---------------------------------------------------------------------------------------
    def accepts(self, name: str) -> bool:
        return name in self._inputs

    def _pick_profile(self, shape: tuple) -> tuple[int, int]:
        """(profile index, largest batch it takes) for an L shape; EngineMismatch if none holds it."""
        for k, (lo, hi) in enumerate(self._profiles):
            if all(a <= b <= c for a, b, c in zip(lo[1:], shape[1:], hi[1:], strict=True)) and lo[0] <= 1:
                return k, hi[0]
        ranges = ", ".join(f"{lo}..{hi}" for lo, hi in self._profiles)
        raise EngineMismatch(
            f"input shape {tuple(shape)} is outside the engine's profiles ({ranges}): "
            f"use a smaller --size/--tile or rebuild the engine with colorize-engine"
        )

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                self._cudart.cudaFree(ptr)
            ptr = _check(self._cudart.cudaMalloc(max(nbytes, 1)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        L = feed.get("L")
        if L is None or not self._profiles:
            return self._run(feed)
        k, max_n = self._pick_profile(L.shape)
        if k != self._profile:
            self.context.set_optimization_profile_async(k, self.stream)
            self._profile = k
        if L.shape[0] <= max_n:
            return self._run(feed)
        parts = [self._run({**feed, "L": L[i : i + max_n]}) for i in range(0, L.shape[0], max_n)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        trt, cudart = self._trt, self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        keep = []
        for name in self._inputs:
            if name not in feed:
                continue  # e.g. a temperature baked into the engine
            arr = np.ascontiguousarray(feed[name], dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            keep.append(arr)
            self.context.set_input_shape(name, arr.shape)
            ptr = self._buffer(name, arr.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        outs = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            host = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            ptr = self._buffer(name, host.nbytes)
            self.context.set_tensor_address(name, ptr)
            outs[name] = (host, ptr)
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for host, ptr in outs.values():
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        del keep
        return {name: host for name, (host, _) in outs.items()}
