"""The runtime's public API (torch-free): ``Colorizer``, ``read_image``, ``write_image``, ``ImageError``.

from colorize_rt.runtime.api import Colorizer, read_image, write_image
colorizer = Colorizer()  # the shipped default model, fastest backend available
write_image(colorizer.colorize(read_image("photo.jpg")), "photo_color.jpg")
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import numpy as np

from ..core.constants import DEFAULT_T
from ..core.cpu import usable_cores
from .backends.registry import BackendError, SelfCheckError, open_runner
from .backends.runners import predict_ab_batch, predict_logits_batch
from .backends.selfcheck import int8_dot_path, int8_path_description
from .backends.shipped_models import SHIPPED, ModelError, model_summary, resolve_model
from .guidance.apply import colorize_guided
from .guidance.spec import PaletteTarget, PointHint
from .limits import TEMPERATURE
from .pipeline.compose import warm_colour_tables
from .pipeline.images import DEFAULT_MAX_PIXELS, DecodedImage, ImageError, read_image, side_by_side, write_image
from .pipeline.modes import colorize_fit, colorize_tiled, colorize_transfer, predict_single, prepare_fit, recombine

METHODS = ("classification", "l2", "transfer")
MODES = ("fit", "tiled")
# A shipped model chosen by name falls back to this one when it fails its known-answer check.
NEXT_CANDIDATE = {"default-int8": "default"}
# With backend auto on the CPU, the shipped model may run as this variant where measured faster on this machine
# (backends.auto_choice); a model named explicitly (--model default-int8) runs as asked.
AUTO_VARIANTS = {"default": "default-int8"}

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "METHODS",
    "MODES",
    "BackendError",
    "DecodedImage",
    "Colorizer",
    "ImageError",
    "ModelError",
    "read_image",
    "side_by_side",
    "write_image",
]


def _auto_variants(name: str, backend: str) -> list:
    """Returns: the files ``auto`` may measure instead of the shipped model ``name`` (its INT8 variant, where shipped)."""
    if backend != "auto" or name not in AUTO_VARIANTS:
        return []
    try:
        return [resolve_model(AUTO_VARIANTS[name])]
    except ModelError:  # an install without it
        return []


def _network_streams(runner, backend: str, purpose: str, threads: int) -> int:
    """How many network calls a ``Colorizer`` lets run at once.

    Args:
        runner: the activated runner.
        backend: the backend it runs on.
        purpose: ``latency`` (one call uses every thread: one at a time) or ``throughput`` (folders).
        threads: the thread count asked for (0: all cores).

    Returns:
        1 for latency and for runners that are not safe to call from several threads (TensorRT, OpenCV dnn);
        for throughput, the runner's own count where it has one (OpenVINO: its optimal number of infer
        requests), or one per thread on ONNX Runtime's CPU provider, whose sessions take concurrent runs.
    """
    if purpose != "throughput" or runner is None:
        return 1
    requests = getattr(runner, "optimal_requests", None)
    if callable(requests):
        return max(1, int(requests()))
    if backend == "cpu" and getattr(runner, "name", "") == "onnxruntime-cpu":
        return threads or usable_cores()
    return 1


class Colorizer:
    """One model on one backend; the runner is opened once and ``colorize`` is thread-safe (at most
    ``streams`` network calls at once: 1 unless opened for ``purpose="throughput"``; pre/post-processing
    runs outside that limit)."""

    def __init__(
        self,
        model: str = "default",
        backend: str = "auto",
        method: str = "classification",
        threads: int = 0,
        *,
        max_side: int = 1024,
        warn: Callable[[str], None] | None = None,
        purpose: str = "latency",
        runs: int | None = None,
    ):
        if method not in METHODS:
            raise ModelError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
        self.method = method
        warm_colour_tables()  # OpenCV's Lab tables, built while the model opens
        self.runner = None
        self.backend = "none"
        self.model_path = None
        self.metadata: dict[str, str] = {}
        self.verdicts: list = []  # every known-answer check made while opening (runtime.selfcheck.Verdict)
        self.notes: list[str] = []
        self.streams = 1  # network calls that may run at once (``_network_streams``)
        self._lock = threading.BoundedSemaphore(1)
        if method == "transfer":
            return
        name = "default-l2" if method == "l2" and model == "default" else model
        self.model_path = resolve_model(name)
        say = warn or (lambda msg: print(msg, file=sys.stderr))
        nxt = NEXT_CANDIDATE.get(name) if name in SHIPPED else None
        variants = _auto_variants(name, backend)
        opts = {"purpose": purpose, "variants": variants, "runs": runs}  # runs: auto weighs start-up for short jobs
        try:
            self.runner, self.backend = open_runner(self.model_path, backend, threads, max_side, say, self.verdicts, **opts)
        except SelfCheckError as exc:
            if nxt is None or self.model_path == resolve_model(nxt):
                raise
            self.model_path = resolve_model(nxt)
            v = exc.verdict
            self._note(f"{v.reason}: mean |Δab| {v.mean:.1f}; using {self.model_path.name}", say, "warning")
            self.runner, self.backend = open_runner(self.model_path, backend, threads, max_side, say, self.verdicts, **opts)
        if variants:  # auto may have measured a variant faster
            self.model_path = getattr(self.runner, "model_path", self.model_path)
        session = getattr(self.runner, "session", None)
        if session is not None:  # reuse the runner's session rather than opening the model twice
            self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        else:
            from .backends.shipped_models import model_metadata

            self.metadata = model_metadata(self.model_path)
        self.streams = _network_streams(self.runner, self.backend, purpose, threads)
        self._lock = threading.BoundedSemaphore(self.streams)

    def _note(self, text: str, say: Callable[[str], None], level: str = "note") -> None:
        self.notes.append(text)
        say(f"colorize-rt: {level}: {text}")

    @property
    def default_temperature(self) -> float:
        try:
            return float(self.metadata.get("default_temperature", DEFAULT_T))
        except ValueError:
            return DEFAULT_T

    # -- network ----------------------------------------------------------------------------------------
    def predict(self, L: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """L* (N, 1, H, W), H and W multiples of 8 -> ab (N, 2, H, W)."""
        if self.runner is None:
            raise ModelError("method 'transfer' runs no network")
        t = self.default_temperature if temperature is None else TEMPERATURE.check(temperature)  # 0.01..10
        with self._lock:
            return predict_ab_batch(self.runner, L, t)

    def _predictor(self, temperature: float | None):
        return lambda L: self.predict(L, temperature)

    @property
    def has_logits(self) -> bool:
        """Whether the model has the 313-bin ``logits`` output a palette needs (classification exports)."""
        return bool(getattr(self.runner, "has_output", lambda _: False)("logits"))

    def predict_with_logits(self, L: np.ndarray, temperature: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """L* (N, 1, H, W) -> (ab (N, 2, H, W), 313-bin logits (N, 313, H/4, W/4)); ValueError for a model without
        the ``logits`` output (an L2 model)."""
        if self.runner is None:
            raise ModelError("method 'transfer' runs no network")
        t = self.default_temperature if temperature is None else TEMPERATURE.check(temperature)
        with self._lock:
            return predict_logits_batch(self.runner, L, t)

    # -- pipeline ---------------------------------------------------------------------------------------
    def colorize(
        self,
        image: DecodedImage,
        *,
        temperature: float | None = None,
        mode: str = "fit",
        size: int = 256,
        tile: int = 512,
        overlap: int = 64,
        reference: DecodedImage | None = None,
        scale: float = 1.0,
        batch: int = 4,
        hints: list[PointHint] | None = None,
        palette: PaletteTarget | None = None,
    ) -> DecodedImage:
        """Colorize ``image`` (its L* is kept, ab predicted); same size, alpha and bit depth as the input.

        ``hints`` (``runtime.guidance.spec``: points in the image's pixels) and ``palette`` guide the colours (fit
        mode, classification models; see docs/hints.md). Without them the output is unchanged.
        """
        if hints or palette is not None:
            if self.method == "transfer" or mode != "fit":
                raise ModelError("hints and a palette need a network (not method 'transfer') and mode 'fit'")
            if palette is not None and not self.has_logits:
                raise ModelError(f"{self.model_path.name} has no 313-bin 'logits' output: a palette needs a classification model")
            t = self.default_temperature if temperature is None else TEMPERATURE.check(temperature)
            logits = (lambda L: self.predict_with_logits(L, t)) if palette is not None else None
            return colorize_guided(image, self._predictor(t), logits, size, hints, palette, t)
        if self.method == "transfer":
            if reference is None:
                raise ModelError("method 'transfer' needs a reference image (--reference IMG)")
            return colorize_transfer(image, reference)
        if mode == "fit":
            return colorize_fit(image, self._predictor(temperature), size)
        if mode == "tiled":
            return colorize_tiled(image, self._predictor(temperature), tile, overlap, scale, batch)
        raise ValueError(f"unknown mode '{mode}': use one of {', '.join(MODES)}")

    # Split fit mode into stages so a batch can overlap decode / network / encode.
    def prepare_fit(self, image: DecodedImage, size: int = 256) -> np.ndarray:
        return prepare_fit(image, size)

    def infer_fit(self, L_small: np.ndarray, temperature: float | None = None) -> np.ndarray:
        return predict_single(self._predictor(temperature), L_small)

    def finish_fit(self, image: DecodedImage, ab_small: np.ndarray) -> DecodedImage:
        return recombine(image, ab_small)

    def info(self) -> dict:
        """Backend actually used, model path, sha256, precision and metadata."""
        out = {"method": self.method, "backend": self.backend}
        if self.runner is not None:
            out["runner"] = self.runner.name
            providers = getattr(self.runner, "active_providers", None)
            if providers:
                out["providers"] = providers
        if self.model_path is not None:
            out["model"] = model_summary(self.model_path)
        out["selfcheck"] = [v.to_dict() | {"line": v.line()} for v in self.verdicts]
        out["cpu_int8_path"] = {"path": int8_dot_path(), "description": int8_path_description()}
        choice = getattr(self.runner, "auto_choice", None)
        if choice is not None:  # the table auto chose from on this CPU (backends.auto_choice)
            out["auto_choice"] = choice.to_dict() | {"lines": choice.lines()}
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def close(self) -> None:
        if self.runner is not None:
            self.runner.deactivate()

    def __enter__(self) -> Colorizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
