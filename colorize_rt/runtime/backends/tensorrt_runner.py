"""Native TensorRT engine runner (TensorRT 10/11 Python API, device memory through cuda-python).

cuda-python (``cuda.bindings.runtime``; the older ``cuda.cudart`` layout too) is used for device buffers
and streams rather than pycuda: it ships binary wheels and is what NVIDIA's own TensorRT samples use,
whereas pycuda is sdist-only and needs a CUDA toolkit to build. Both ``tensorrt`` and cuda-python are
imported lazily, on ``activate()``.

An engine is only valid where its sidecar (``runtime.engine_description``) says it is; the runner refuses
a mismatched engine with the ``colorize-engine`` command that rebuilds it. At inference the runner:

* picks the tightest optimisation profile that holds the whole batch (the one whose ``opt`` shape is
  nearest the input, then the smallest range), so a batch of 512-px tiles runs on the ``tiles`` profile;
  a batch larger than any profile is split; an image smaller than a profile's minimum is edge-padded up
  to it and the output cropped back;
* switches profile (on its own non-default stream) before setting any input shape, checks the booleans
  TensorRT returns, gives every I/O tensor an address before ``execute_async_v3``;
* feeds ``temperature`` (the caller's, else the engine's default, 0.38) in the shape the engine declares:
  scalar, ``[1]`` or one per sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...core.lazy import require
from .engine_description import EngineMismatch, check_compatible, load_sidecar, rebuild_hint, temperature_default
from .runners import LOGITS_OUTPUT, Runner

_TEMPERATURE = "temperature"


class CudaError(RuntimeError):
    """A cuda-python call failed; the message names the call and CUDA's error string."""


def _cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+ and 13.x) or ``cuda.cudart`` (older)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            require("cuda.bindings")  # raises MissingDependency with the pip hint
            raise
    return cudart


def _check(cudart, result, what: str):
    """cuda-python calls return ``(err, *values)``: raise ``CudaError`` on error, else return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        try:
            detail = cudart.cudaGetErrorString(err)[1]
            detail = detail.decode(errors="replace") if isinstance(detail, bytes | bytearray) else str(detail)
        except Exception:  # noqa: BLE001 - the name alone is still a useful message
            detail = ""
        raise CudaError(f"{what} failed: {name}" + (f" ({detail})" if detail else ""))
    return rest[0] if len(rest) == 1 else tuple(rest)


def _text(raw) -> str:
    name = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return name.rstrip("\x00").strip()


def profile_distance(shape: tuple, profile: tuple[tuple, tuple, tuple]) -> tuple[float, int] | None:
    """How well an ``L`` shape fits one optimisation profile: None when outside it, else (|log(volume /
    opt volume)|, max volume) where smaller is tighter."""
    lo, opt, hi = profile
    if not all(a <= b <= c for a, b, c in zip(lo, shape, hi, strict=True)):
        return None
    vol, opt_vol, max_vol = (float(np.prod(s, dtype=np.float64)) for s in (shape, opt, hi))
    return abs(np.log(vol / opt_vol)), int(max_vol)


def pick_profile(shape: tuple, profiles: list[tuple[tuple, tuple, tuple]]) -> int | None:
    """Index of the tightest profile that holds ``shape`` (N, C, H, W) as is, or None.

    Args:
        shape: the ``L`` shape.
        profiles: (min, opt, max) per optimisation profile.

    Returns:
        The profile index, or None when no profile holds the shape.
    """
    scored = [(d, k) for k, p in enumerate(profiles) if (d := profile_distance(tuple(shape), p)) is not None]
    return min(scored)[1] if scored else None


def padded_hw(shape: tuple, profile: tuple[tuple, tuple, tuple]) -> tuple[int, int] | None:
    """(H, W) raised to the profile's minimum, or None when the image is too large or wrong in C."""
    lo, _, hi = profile
    h, w = max(shape[2], lo[2]), max(shape[3], lo[3])
    if shape[1] != lo[1] or h > hi[2] or w > hi[3]:
        return None
    return h, w


class TrtRunner(Runner):
    """Runs a serialized TensorRT engine with dynamic shapes (see the module docstring).

    Args:
        engine_path: the ``.engine`` file (its sidecar ``.engine.json`` next to it).
        check_sidecar: refuse an engine whose sidecar does not match this TensorRT / GPU.
        device: CUDA device ordinal.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, check_sidecar: bool = True, device: int = 0):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.check_sidecar = check_sidecar
        self.device = int(device)
        self.engine = self.context = self.stream = None
        self.sidecar: dict = {}
        self.device_name = ""
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity bytes)
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._profiles: list[tuple[tuple, tuple, tuple]] = []  # (min, opt, max) of "L" per profile
        self._profile = 0
        self._trt = self._cudart = self._runtime = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        trt = require("tensorrt")
        cudart = _cudart()
        self._trt, self._cudart = trt, cudart
        try:
            self._activate(trt, cudart)
        except BaseException:
            self.deactivate_impl()
            raise

    def _activate(self, trt, cudart) -> None:
        _check(cudart, cudart.cudaSetDevice(self.device), "cudaSetDevice")
        props = _check(cudart, cudart.cudaGetDeviceProperties(self.device), "cudaGetDeviceProperties")
        self.device_name = _text(props.name)
        self.sidecar = load_sidecar(self.engine_path) or {}
        if self.check_sidecar and self.sidecar:
            check_compatible(
                {"format": 1, **self.sidecar},
                self.engine_path,
                tensorrt_version=trt.__version__,
                gpu_name=self.device_name,
                compute_capability=(int(props.major), int(props.minor)),
            )
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        if self.sidecar.get("version_compatible"):
            self._runtime.engine_host_code_allowed = True
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EngineMismatch(
                f"{self.engine_path.name} could not be deserialized by TensorRT {trt.__version__} on {self.device_name}; "
                f"{rebuild_hint(self.engine_path, self.sidecar)}"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            onnx_path = self.sidecar.get("onnx_path") or "MODEL.onnx"
            raise EngineMismatch(
                f"TensorRT could not create an execution context for {self.engine_path.name} (not enough free device "
                f"memory on {self.device_name} for its largest profile): free GPU memory, or rebuild it with a smaller "
                f"profile: colorize-engine {onnx_path} --profile custom --memory-gib <free GiB> -o {self.engine_path}"
            )
        self.stream = _check(cudart, cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
        self._read_io(trt)

    def _read_io(self, trt) -> None:
        for i in range(self.engine.num_io_tensors):
            t = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(t) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(t)
        if "L" in self._inputs:
            for k in range(self.engine.num_optimization_profiles):
                lo, opt, hi = self.engine.get_tensor_profile_shape("L", k)
                self._profiles.append((tuple(lo), tuple(opt), tuple(hi)))
        self._profile = 0

    def deactivate_impl(self) -> None:
        cudart = self._cudart
        if cudart is not None:
            for ptr, _ in self._buffers.values():
                cudart.cudaFree(ptr)
            if self.stream is not None:
                cudart.cudaStreamDestroy(self.stream)
        self._buffers.clear()
        self._profiles.clear()
        self._inputs.clear()
        self._outputs.clear()
        self.context = self.engine = self.stream = self._runtime = None

    # -- inference ---------------------------------------------------------------------------------------
    def accepts(self, name: str) -> bool:
        return name in self._inputs

    @property
    def stream_handle(self) -> int:
        """The runner's CUDA stream as the integer handle TensorRT's Python API takes."""
        return int(self.stream)

    def has_output(self, name: str) -> bool:
        return name in self._outputs

    def infer_impl(self, feed: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        wanted = tuple(o for o in self._outputs if o != LOGITS_OUTPUT) if outputs is None else outputs
        L = feed.get("L")
        if L is None or not self._profiles:
            return self._run(feed, wanted)
        L = np.asarray(L)
        k = pick_profile(L.shape, self._profiles)
        if k is not None:
            self._switch(k)
            return self._run(feed, wanted)
        return self._fit(feed, L, wanted)

    def _fit(self, feed: dict, L: np.ndarray, wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Split a batch no profile holds, or pad an image below every profile's minimum."""
        n, _, h, w = L.shape
        fits = [(p[2][0], k, hw) for k, p in enumerate(self._profiles) if (hw := padded_hw(L.shape, p)) is not None]
        if not fits:
            ranges = ", ".join(f"{lo}..{hi}" for lo, _, hi in self._profiles)
            raise EngineMismatch(
                f"input shape {tuple(L.shape)} is outside the engine's profiles ({ranges}): use a smaller --size/--tile "
                f"or {rebuild_hint(self.engine_path, self.sidecar)} with a larger profile"
            )
        max_n, k, (ph, pw) = max(fits)
        if n > max_n:
            parts = [
                self.infer_impl({**feed, "L": L[i : i + max_n], **self._temperature_slice(feed, i, max_n)}, wanted)
                for i in range(0, n, max_n)
            ]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        padded = np.pad(L, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="edge")
        self._switch(k)
        out = self._run({**feed, "L": padded}, wanted)
        # ab is at input resolution, the logits at a quarter of it (the network's stride 4 before the decode's x4)
        crop = {(ph, pw): (h, w), (ph // 4, pw // 4): (-(-h // 4), -(-w // 4))}
        for name, a in out.items():
            if a.ndim == 4 and a.shape[-2:] in crop:
                ch, cw = crop[a.shape[-2:]]
                out[name] = a[..., :ch, :cw]
        return out

    @staticmethod
    def _temperature_slice(feed: dict, start: int, count: int) -> dict:
        t = feed.get(_TEMPERATURE)
        if t is None or np.ndim(t) == 0 or np.size(t) == 1:
            return {}
        return {_TEMPERATURE: np.asarray(t)[start : start + count]}

    def _switch(self, k: int) -> None:
        """Select optimisation profile ``k`` (before any input shape is set for the run)."""
        if k == self._profile:
            return
        if not self.context.set_optimization_profile_async(k, self.stream_handle):
            raise RuntimeError(f"TensorRT refused to switch to optimisation profile {k} of {self.engine_path.name}")
        self._profile = k

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                self._cudart.cudaFree(ptr)
                del self._buffers[name]
            ptr = _check(self._cudart, self._cudart.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes}) for {name}")
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _input_array(self, name: str, feed: dict, n: int) -> np.ndarray:
        dtype = self._trt.nptype(self.engine.get_tensor_dtype(name))
        if name != _TEMPERATURE:
            return np.ascontiguousarray(feed[name], dtype=dtype)
        t = np.asarray(feed.get(_TEMPERATURE, temperature_default(self.sidecar)), dtype=dtype)
        declared = tuple(self.engine.get_tensor_shape(name))
        if -1 in declared:  # one temperature per sample: (N, 1)
            return np.ascontiguousarray(np.broadcast_to(t.reshape(-1, 1), (n, 1)), dtype=dtype)
        return np.ascontiguousarray(t.reshape(declared), dtype=dtype)

    def _bind_inputs(self, feed: dict, keep: list) -> set[str]:
        cudart = self._cudart
        n = int(np.shape(feed["L"])[0]) if "L" in feed else 1
        bound = set()
        for name in self._inputs:
            if name not in feed and name != _TEMPERATURE:
                raise ValueError(f"the engine needs input {name!r}; the feed has {sorted(feed)}")
            arr = self._input_array(name, feed, n)
            keep.append(arr)
            if -1 in tuple(self.engine.get_tensor_shape(name)) and not self.context.set_input_shape(name, arr.shape):
                raise EngineMismatch(
                    f"TensorRT rejected shape {arr.shape} for input {name!r} in profile {self._profile} of "
                    f"{self.engine_path.name}; {rebuild_hint(self.engine_path, self.sidecar)}"
                )
            ptr = self._buffer(name, arr.nbytes)
            _check(
                cudart,
                cudart.cudaMemcpyAsync(
                    ptr, arr.ctypes.data, arr.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream
                ),
                "cudaMemcpyAsync (host to device)",
            )
            if not self.context.set_tensor_address(name, ptr):
                raise RuntimeError(f"TensorRT refused the address of input {name!r}")
            bound.add(name)
        return bound

    def _bind_outputs(self) -> dict[str, tuple[np.ndarray, int]]:
        outs = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"TensorRT could not infer the shape of output {name!r} ({shape})")
            host = np.empty(shape, dtype=self._trt.nptype(self.engine.get_tensor_dtype(name)))
            ptr = self._buffer(name, host.nbytes)
            if not self.context.set_tensor_address(name, ptr):
                raise RuntimeError(f"TensorRT refused the address of output {name!r}")
            outs[name] = (host, ptr)
        return outs

    def _run(self, feed: dict[str, np.ndarray], wanted: tuple[str, ...] = ("ab",)) -> dict[str, np.ndarray]:
        cudart = self._cudart
        keep: list[np.ndarray] = []  # host arrays stay alive until the stream is synchronised
        bound = self._bind_inputs(feed, keep)
        outs = self._bind_outputs()
        missing = [t for t in (*self._inputs, *self._outputs) if t not in bound and t not in outs]
        if missing:
            raise RuntimeError(f"TensorRT tensors without a device address: {missing}")
        if not self.context.execute_async_v3(self.stream_handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.engine_path.name} (see TensorRT's messages above)")
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        unknown = [name for name in wanted if name not in outs]
        if unknown:
            raise ValueError(f"{self.engine_path.name} has no output {unknown[0]!r}; its outputs are {', '.join(outs)}")
        outs = {name: outs[name] for name in wanted}  # every output is bound; only the wanted ones are copied back
        for name, (host, ptr) in outs.items():
            _check(
                cudart,
                cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self.stream),
                f"cudaMemcpyAsync ({name} to host)",
            )
        _check(cudart, cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        del keep
        return {name: host for name, (host, _) in outs.items()}


__all__ = ["CudaError", "EngineMismatch", "TrtRunner", "pick_profile"]
