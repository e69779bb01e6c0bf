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
* **Outputs nobody asked for are not computed.** Our models also output ``logits`` (for hints and palettes),
  which OpenVINO would otherwise reorder into a plain layout at every call: 1.3 ms of a 13.6 ms 256² bf16 call
  (one thread, per-layer counters, 2-core Xeon with AMX). The runner compiles the model without the on-request
  outputs (an OpenVINO IR saved once per model file in the cache folder, so a start compiles from it as fast
  as from the ONNX file) and compiles the whole model only when a call asks for ``logits``.
* **The decode without a Softmax node** (``_softmax_expectation_as_sums``). The fused decode is Softmax over the
  313 bins, then a 1x1 convolution (the expectation of ab). OpenVINO runs its Softmax in a planar layout, with a
  reorder before and after it (1.7 ms of the call above). Both compiled models compute it instead as
  ``conv(exp(x - max)) / sum(exp(x - max))``, the same formula in ops that keep the channels-last layout: one
  256² call, one thread, interleaved, 1.14x faster in bf16 and 1.12x in INT8, ab within 0.5 of the Softmax
  graph in bf16 (mean 0.02) and within 1e-4 in f32. The lean and the whole model carry the same rewrite, so
  ``ab`` does not depend on whether ``logits`` was asked for.
* **Compiled-model cache.** OpenVINO's ``CACHE_DIR`` under ``<cache root>/openvino/ov<version>-cpu<flags>``
  (keyed like ``ort_cache``: OpenVINO's own blob names hash the model and its compile options; the folder name
  adds the library version and the CPU's flags). ``COLORIZE_RT_ORT_CACHE`` governs it too: ``0`` and ``read``
  (what ``--info`` sets) compile in memory only.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path

import numpy as np

from ...core.cpu import cpu_flags
from ...core.lazy import require
from ...core.paths import cache_dir
from ..limits import THREADS
from .ort_cache import ort_cache_mode
from .runners import Runner

PURPOSES = ("latency", "throughput")
OV_PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16"}
_ON_REQUEST = ("logits",)  # optional outputs returned only when asked for (runners.LOGITS_OUTPUT)
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


LEAN_VERSION = 2  # of what ``_lean_model`` does: saved IRs of another version are not reused


def _softmax_expectation_as_sums(model) -> bool:
    """Rewrite every ``Softmax(x, channels) -> 1x1 Convolution`` (the decode's expectation over the bins) as
    ``Convolution(e) / ReduceSum(e)`` with ``e = Exp(x - ReduceMax(x))``, in place (see the module doc).

    Returns:
        Whether anything was rewritten.
    """
    import openvino.opset13 as ops

    changed = False
    for softmax in model.get_ordered_ops():
        if softmax.get_type_name() != "Softmax":
            continue
        rank = softmax.input_value(0).get_partial_shape().rank.get_length()
        axis = int(softmax.get_attributes().get("axis", 1))
        users = list(softmax.output(0).get_target_inputs())
        if (axis + rank if axis < 0 else axis) != 1 or len(users) != 1:
            continue
        conv = users[0].get_node()
        attrs = conv.get_attributes() if conv.get_type_name() == "Convolution" else {}
        weights = conv.input_value(1) if attrs else None
        if not attrs or users[0].get_index() != 0 or list(weights.get_partial_shape().to_shape())[2:] != [1, 1]:
            continue
        if any(v != 1 for v in attrs["strides"] + attrs["dilations"]) or any(attrs["pads_begin"] + attrs["pads_end"]):
            continue
        x = softmax.input_value(0)
        e = ops.exp(ops.subtract(x, ops.reduce_max(x, np.array([1], np.int64), keep_dims=True)))
        expectation = ops.convolution(e, weights, [1, 1], [0, 0], [0, 0], [1, 1])
        out = ops.divide(expectation, ops.reduce_sum(e, np.array([1], np.int64), keep_dims=True))
        for target in list(conv.output(0).get_target_inputs()):
            target.replace_source_output(out.output(0))
        changed = True
    if changed:
        model.validate_nodes_and_infer_types()
    return changed


def _lean_paths(model_path: Path) -> tuple[Path, Path]:
    """Returns: (IR ``.xml``, JSON note) of ``model_path`` without its on-request outputs, in the cache folder.
    Keyed by the file's content (sha256) and OpenVINO's version (the folder)."""
    from .ort_cache import model_file_hash

    stem = f"{model_path.stem}-{model_file_hash(model_path)}-lean{LEAN_VERSION}"
    folder = openvino_cache_folder() / "lean"
    return folder / f"{stem}.xml", folder / f"{stem}.json"


def _save_lean(ov, model, xml: Path, note: Path, dropped: list[str], changed: bool) -> None:
    """Save the IR (where it differs from the file) and the note atomically; an unwritable cache is ignored."""
    import json
    import shutil
    import tempfile

    from ...core.atomic import atomic_write_text

    try:
        xml.parent.mkdir(parents=True, exist_ok=True)
        if changed:
            tmp = Path(tempfile.mkdtemp(prefix=".lean.", dir=xml.parent))
            try:
                ov.save_model(model, str(tmp / xml.name), compress_to_fp16=False)
                os.replace(tmp / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
                os.replace(tmp / xml.name, xml)  # the .xml last: it is what a start looks for
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        atomic_write_text(note, json.dumps({"dropped": dropped, "changed": changed}))
    except OSError:
        pass


def _lean_model(ov, core, model_path: Path):
    """The model without its on-request outputs and with its decode rewritten.

    Returns:
        (the ``ov.Model``, [dropped output names], whether it differs from the file).
    """
    model = core.read_model(str(model_path))
    results = model.get_results()
    keep = [r for r in results if not set(r.output(0).get_names()) & set(_ON_REQUEST)]
    dropped = sorted({n for r in results if r not in keep for n in r.output(0).get_names()} & set(_ON_REQUEST))
    lean = ov.Model(keep, model.get_parameters(), model.get_friendly_name()) if dropped else model
    rewritten = _softmax_expectation_as_sums(lean)
    return lean, dropped, bool(dropped) or rewritten


def _whole_model(core, model_path: Path):
    """Every output, the decode rewritten as in the lean model (so ``ab`` is the same in both)."""
    model = core.read_model(str(model_path))
    _softmax_expectation_as_sums(model)
    return model


def _forget_lean(model_path: Path) -> None:
    """Delete the saved lean IR and its note (the next ``_lean_source`` builds and saves them again)."""
    xml, note = _lean_paths(model_path)
    for path in (note, xml, xml.with_suffix(".bin")):
        path.unlink(missing_ok=True)


def _lean_source(ov, core, model_path: Path):
    """What to compile for calls that ask for no on-request output, and the outputs it leaves out.

    Returns:
        (a file path or an in-memory ``ov.Model``, [dropped output names]).
    """
    import json

    mode = ort_cache_mode()
    if mode != "off":
        xml, note = _lean_paths(model_path)
        try:
            saved = json.loads(note.read_text())
            dropped = list(saved["dropped"])
            if not saved["changed"]:
                return str(model_path), dropped
            if xml.is_file() and xml.with_suffix(".bin").is_file():
                return str(xml), dropped
        except (OSError, ValueError, KeyError, TypeError):
            pass
    lean, dropped, changed = _lean_model(ov, core, model_path)
    if mode == "on":
        xml, note = _lean_paths(model_path)
        _save_lean(ov, lean, xml, note, dropped, changed)
        if not changed:
            return str(model_path), dropped
        if xml.is_file():
            return str(xml), dropped
    return lean, dropped


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
        self._dynamic = None  # the model without on-request outputs (``_lean_source``)
        self._whole = None  # the whole model, compiled on the first call that asks for an on-request output
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
        source, dropped = _lean_source(ov, self._core, self.model_path)
        try:
            self._dynamic = self._core.compile_model(source, "CPU", self.config())
        except RuntimeError:
            if not isinstance(source, str) or source == str(self.model_path):
                raise
            _forget_lean(self.model_path)  # a saved IR that no longer loads (damaged): built again from the file
            source, dropped = _lean_source(ov, self._core, self.model_path)
            self._dynamic = self._core.compile_model(source, "CPU", self.config())
        self._inputs = {p.get_any_name(): len(p.get_partial_shape()) for p in self._dynamic.inputs}
        self._outputs = [p.get_any_name() for p in self._dynamic.outputs] + dropped

    def deactivate_impl(self) -> None:
        self._dynamic = self._whole = self._core = None
        self._pools.clear()

    def _compiled_for(self, names: list[str]):
        """The lean model, or the whole one (compiled once, on first need) when ``names`` has an on-request output."""
        lean = {p.get_any_name() for p in self._dynamic.outputs}
        if all(n in lean for n in names):
            return self._dynamic
        with self._lock:
            if self._whole is None:
                self._whole = self._core.compile_model(_whole_model(self._core, self.model_path), "CPU", self.config())
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
        names = [n for n in self._outputs if n not in _ON_REQUEST] if outputs is None else list(outputs)
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
