"""OpenVINO (2026.x) on our ONNX files, fp32 and the Q/DQ INT8, read directly by OpenVINO's ONNX frontend.

``OpenVinoRunner`` has ``OrtRunner``'s lifecycle and feed: ``{"L": (N, 1, H, W), "temperature": ()}`` ->
every output the model has (``ab``, and whatever a newer export adds), each input fed only where the model
has it.

* **Precision.** ``INFERENCE_PRECISION_HINT`` is always set: ``f32`` by default. On a CPU with AVX512-BF16 or
  AMX OpenVINO would otherwise compute an fp32 model in bf16; ``precision="bf16"`` asks for that on purpose,
  and ``backends.registry`` keeps it only where the model's known-answer self-check passes.
* **Hints.** ``purpose="latency"`` (single photos): one stream using every thread. ``purpose="throughput"``
  (folders, batches): OpenVINO's throughput hint (several streams); a batch is split over that many infer
  requests run at once, and concurrent ``infer`` calls each take their own request.
* **Any input size: one dynamic-shape model.** Measured on this project's default model (Xeon with AVX-512/AMX,
  2 shared cores, OpenVINO 2026.4): a model reshaped to the exact input size runs 10-20 % faster than the
  dynamic-shape model (256²: 12 vs 13-19 ms INT8, 33 vs 41 ms fp32; 512²: 44 vs 55 ms INT8), but compiling it
  costs 130-500 ms (60-90 ms from the compiled-model cache), 10-40 runs' worth, a folder of mixed aspect ratios
  pays it per shape, and a static model's output differs from the dynamic one's in the last bits, which moved
  8-bit pixels: the same photo twice in one process gave different bytes (a cached result then failed to match
  its recomputation). So every size runs on the dynamic model, compiled once: the same input always gives the
  same output, and the first call compiles nothing per size. A static model also keeps buffers for its whole
  shape (a 2000² tiled run peaked at 1342 MB with static tile models against 883 MB dynamic-only).
* **What is compiled** (``openvino_models``): the model without the outputs nobody asked for (``logits``) and
  with its decode's Softmax rewritten, saved once as an IR in the cache folder; the whole model, rewritten the
  same way, only for calls that ask for ``logits``.
* **Compiled-model cache.** OpenVINO's ``CACHE_DIR`` under ``<cache root>/openvino/ov<version>-cpu<flags>``
  (keyed like ``ort_cache``: OpenVINO's own blob names hash the model and its compile options; the folder name
  adds the library version and the CPU's flags). ``COLORIZE_RT_ORT_CACHE`` governs it too: ``0`` and ``read``
  (what ``--info`` sets) compile in memory only.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path

import numpy as np

from ...core.cpu import cpu_flags
from ...core.lazy import require
from ...core.paths import cache_dir
from ..limits import THREADS
from .openvino_models import ON_REQUEST, forget_lean, lean_source, whole_model
from .ort_cache import ort_cache_mode
from .runners import Runner

PURPOSES = ("latency", "throughput")
OV_PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16"}
# The first inference in a process, sync or async, runs alone: OpenVINO's Python binding initialises statics on
# it with the GIL released, and a second thread reaching the same guard holding the GIL deadlocked a folder run
# (lanes calling infer at once; seen as every thread in futex wait, one in __cxa_guard_acquire).
_FIRST_USE_LOCK = threading.Lock()
_FIRST_USE_DONE: set[str] = set()


def import_openvino():
    """Returns: the ``openvino`` module, imported without its model-conversion tool.

    ``import openvino`` also imports ``openvino.tools.ovc`` (ONNX/TensorFlow/PyTorch conversion and its
    telemetry), which running a model never uses: 0.27 s of the 0.37-0.45 s import on the 2-core Xeon (loaded,
    ``python -X importtime``). OpenVINO imports it inside ``try/except ImportError``, so it is hidden for the
    import only; a later ``from openvino.tools.ovc import convert_model`` still works.

    Raises:
        MissingDependency: OpenVINO is not installed (one line naming the pip command).
    """
    import sys

    hide = "openvino" not in sys.modules and "openvino.tools.ovc" not in sys.modules
    if hide:
        sys.modules["openvino.tools.ovc"] = None  # an ImportError for that one import
    try:
        return require("openvino")
    finally:
        if hide and sys.modules.get("openvino.tools.ovc", 0) is None:
            del sys.modules["openvino.tools.ovc"]


def openvino_cache_folder() -> Path:
    """Returns: OpenVINO's ``CACHE_DIR`` for this OpenVINO version and CPU (not created here)."""
    ov = import_openvino()
    cpu = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return cache_dir("openvino") / f"ov{ov.get_version().split('-')[0]}-cpu{cpu}"


class OpenVinoRunner(Runner):
    """OpenVINO CPU inference over an exported colorize-rt model (see the module doc).

    Args:
        model_path: the ONNX model (fp32 or Q/DQ INT8).
        threads: inference threads (0: OpenVINO's default, all cores).
        purpose: ``"latency"`` (single photos) or ``"throughput"`` (folders, batches).
        precision: ``"f32"`` or ``"bf16"`` (``INFERENCE_PRECISION_HINT``).
    """

    def __init__(self, model_path: str | Path, threads: int = 0, purpose: str = "latency", precision: str = "f32"):
        super().__init__()
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose '{purpose}': use one of {', '.join(PURPOSES)}")
        if precision not in OV_PRECISIONS:
            raise ValueError(f"unknown OpenVINO precision '{precision}': use f32 or bf16")
        self.model_path = Path(model_path)
        self.threads = THREADS.check(threads)
        self.purpose = purpose
        self.precision = OV_PRECISIONS[precision]
        self.name = f"openvino-{self.precision}"
        self.providers = {"precision": self.precision, "purpose": purpose}  # what the self-check cache keys on
        self._core = None
        self._dynamic = None  # the model without on-request outputs (``openvino_models.lean_source``)
        self._whole = None  # the whole model, compiled on the first call that asks for an on-request output
        self._dropped: set[str] = set()  # the outputs the lean model leaves out
        self._pools: dict[int, queue.SimpleQueue] = {}
        self._lock = threading.Lock()
        self._inputs: dict[str, int] = {}  # input name -> rank
        self._outputs: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------------
    def config(self) -> dict[str, str]:
        """Returns: the compile properties (hint, precision, threads, cache folder)."""
        cfg = {
            "PERFORMANCE_HINT": self.purpose.upper(),
            "INFERENCE_PRECISION_HINT": self.precision,
        }
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = str(self.threads)
        if ort_cache_mode() == "on":
            try:
                folder = openvino_cache_folder()
                folder.mkdir(parents=True, exist_ok=True)
                cfg["CACHE_DIR"] = str(folder)
            except OSError:  # an unwritable cache: compile in memory
                pass
        return cfg

    def activate_impl(self) -> None:
        ov = import_openvino()
        # Only the ONNX frontend: on a file it cannot read, compile_model would try every frontend in turn
        # (TensorFlow's writes its parse errors on stderr).
        if not ov.frontend.FrontEndManager().load_by_framework("onnx").supported(str(self.model_path)):
            raise RuntimeError(f"{self.model_path} is not an ONNX model OpenVINO can read")
        self._core = ov.Core()
        # compile_model(path) lets a cache hit skip reading the model file at all
        lean_cache = (openvino_cache_folder() / "lean", ort_cache_mode())
        source, dropped = lean_source(ov, self._core, self.model_path, *lean_cache)
        try:
            self._dynamic = self._core.compile_model(source, "CPU", self.config())
        except RuntimeError:
            if not isinstance(source, str) or source == str(self.model_path):
                raise
            forget_lean(self.model_path, lean_cache[0])  # a saved IR that no longer loads (damaged): built again
            source, dropped = lean_source(ov, self._core, self.model_path, *lean_cache)
            self._dynamic = self._core.compile_model(source, "CPU", self.config())
        self._inputs = {p.get_any_name(): len(p.get_partial_shape()) for p in self._dynamic.inputs}
        self._outputs = [p.get_any_name() for p in self._dynamic.outputs] + dropped
        self._dropped = set(dropped)

    def deactivate_impl(self) -> None:
        self._dynamic = self._whole = self._core = None
        self._pools.clear()

    def _compiled_for(self, names: list[str]):
        """The lean model, or the whole one (compiled once, on first need) when ``names`` has an on-request output."""
        if not self._dropped.intersection(names):
            return self._dynamic
        with self._lock:
            if self._whole is None:
                self._whole = self._core.compile_model(whole_model(self._core, self.model_path), "CPU", self.config())
            return self._whole

    def accepts(self, name: str) -> bool:
        return name in self._inputs

    def has_output(self, name: str) -> bool:
        return name in self._outputs

    @property
    def active_providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.precision}, {self.purpose})"] if self._dynamic is not None else []

    def compiled_precision(self) -> str:
        """Returns: the inference precision OpenVINO compiled with (``f32`` or ``bf16``)."""
        if self._dynamic is None:
            return ""
        hint = self._dynamic.get_property("INFERENCE_PRECISION_HINT")
        return hint.to_string() if hasattr(hint, "to_string") else str(hint)

    def optimal_requests(self) -> int:
        """Returns: how many infer requests OpenVINO suggests running at once (1 under the latency hint)."""
        return int(self._dynamic.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if self._dynamic is not None else 1

    def _request(self, compiled):
        pool = self._pools.setdefault(id(compiled), queue.SimpleQueue())
        try:
            return pool.get_nowait()
        except queue.Empty:
            return compiled.create_infer_request()

    def _give_back(self, compiled, request) -> None:
        pool = self._pools.get(id(compiled))
        if pool is not None:
            pool.put(request)

    # -- inference --------------------------------------------------------------------------------------
    def _feed(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, value in feed.items():
            if name not in self._inputs:
                continue
            arr = np.ascontiguousarray(value, dtype=np.float32) if name in ("L", "temperature") else np.ascontiguousarray(value)
            if name == "temperature" and arr.ndim != self._inputs[name] and arr.size == 1:
                arr = arr.reshape((1,) * self._inputs[name])
            out[name] = arr
        return out

    def infer_impl(self, feed: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        names = [n for n in self._outputs if n not in ON_REQUEST] if outputs is None else list(outputs)
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise ValueError(f"{self.model_path.name} has no output {', '.join(unknown)} (it has {', '.join(self._outputs)})")
        feed = self._feed(feed)
        L = feed["L"]
        parts = self.optimal_requests() if self.purpose == "throughput" else 1
        parts = min(parts, L.shape[0])
        kind = "sync" if parts <= 1 else "async"
        if kind not in _FIRST_USE_DONE:
            with _FIRST_USE_LOCK:
                out = self._run(feed, names) if parts <= 1 else self._run_split(feed, names, parts)
                _FIRST_USE_DONE.add(kind)
                return out
        return self._run(feed, names) if parts <= 1 else self._run_split(feed, names, parts)

    def _run_split(self, feed: dict[str, np.ndarray], names: list[str], parts: int) -> dict[str, np.ndarray]:
        L = feed["L"]
        # throughput: split the batch over the streams, one request each, run at once
        bounds = np.linspace(0, L.shape[0], parts + 1).astype(int)
        jobs = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            part = {**feed, "L": L[lo:hi]}
            for name, value in feed.items():  # other batched inputs (hints) follow L's split
                if name not in ("L", "temperature") and value.ndim and value.shape[0] == L.shape[0]:
                    part[name] = value[lo:hi]
            compiled = self._compiled_for(names)
            request = self._request(compiled)
            request.start_async(part)
            jobs.append((compiled, request))
        results = []
        for compiled, request in jobs:
            request.wait()
            results.append({n: request.get_tensor(n).data.copy() for n in names})
            self._give_back(compiled, request)
        return {n: np.concatenate([r[n] for r in results]) for n in names}

    def _run(self, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        compiled = self._compiled_for(names)
        request = self._request(compiled)
        try:
            request.infer(feed)
            return {n: request.get_tensor(n).data.copy() for n in names}
        finally:
            self._give_back(compiled, request)
