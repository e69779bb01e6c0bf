"""The runtime's public API (torch-free): ``Engine``, ``read_image``, ``write_image``, ``ImageError``.

from colorize_rt.runtime.api import Engine, read_image, write_image
engine = Engine()                      # the shipped default model, fastest backend available
write_image(engine.colorize(read_image("photo.jpg")), "photo_color.jpg")
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..core.constants import DEFAULT_T
from .backends import BackendError, open_runner
from .images import DEFAULT_MAX_PIXELS, DecodedImage, ImageError, read_image, side_by_side, write_image
from .models import ModelError, model_summary, resolve_model
from .pipeline import colorize_fit, colorize_tiled, colorize_transfer, predict_single, prepare_fit, recombine
from .runners import predict_ab_batch

METHODS = ("classification", "l2", "transfer")
MODES = ("fit", "tiled")

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "METHODS",
    "MODES",
    "BackendError",
    "DecodedImage",
    "Engine",
    "ImageError",
    "ModelError",
    "read_image",
    "side_by_side",
    "write_image",
]


class Engine:
    """One model on one backend; the runner is opened once and ``colorize`` is thread-safe (one lock
    around the network call; pre/post-processing runs outside it)."""

    def __init__(
        self,
        model: str = "default",
        backend: str = "auto",
        method: str = "classification",
        threads: int = 0,
        *,
        max_side: int = 1024,
        warn: Callable[[str], None] | None = None,
    ):
        if method not in METHODS:
            raise ModelError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
        self.method = method
        self.runner = None
        self.backend = "none"
        self.model_path = None
        self.metadata: dict[str, str] = {}
        self._lock = threading.Lock()
        if method == "transfer":
            return
        name = "default-l2" if method == "l2" and model == "default" else model
        self.model_path = resolve_model(name)
        self.runner, self.backend = open_runner(self.model_path, backend, threads, max_side, warn)
        session = getattr(self.runner, "session", None)
        if session is not None:  # reuse the runner's session rather than opening the model twice
            self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        else:
            from .models import model_metadata

            self.metadata = model_metadata(self.model_path)

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
        t = self.default_temperature if temperature is None else float(temperature)
        with self._lock:
            return predict_ab_batch(self.runner, L, t)

    def _predictor(self, temperature: float | None):
        return lambda L: self.predict(L, temperature)

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
    ) -> DecodedImage:
        """Colorize ``image`` (its L* is kept, ab predicted); same size, alpha and bit depth as the input."""
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
        return out

    def close(self) -> None:
        if self.runner is not None:
            self.runner.deactivate()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
