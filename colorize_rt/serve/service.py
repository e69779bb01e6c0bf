"""The one service layer both UIs (and the HTTP endpoint) call: upload checks, cached colorization,
gray/colour blends, blend animation frames and GIF, side-by-side, PNG downloads. No torch, no UI code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.constants import DEFAULT_T
from ..runtime import api
from ..runtime.images import to_bgr_for_write
from ..runtime.pipeline import gray_of
from .cache import ResultCache, cache_key, format_cache_info

log = logging.getLogger(__name__)

METHODS = api.METHODS
MODES = api.MODES
METHOD_LABELS = {
    "classification": "classification (313 bins, annealed mean)",
    "l2": "L2 regression",
    "transfer": "transfer from a reference image",
}
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_UI_MAX_PIXELS = 50_000_000
DEFAULT_SIZE = 256


class UserError(ValueError):
    """A request the user can fix (not an image, too large, no model, missing reference); one line."""


@dataclass
class ColorizeResult:
    gray: np.ndarray  # (H, W, 3) uint8: the input's lightness, what the network sees
    color: np.ndarray  # (H, W, 3) uint8: the colorized result for display
    png: bytes  # full-fidelity result (16-bit / alpha kept) for download
    cached: bool
    key: str
    method: str
    backend: str
    seconds: float


def to_display(rgb: np.ndarray) -> np.ndarray:
    """uint8 / uint16 (H, W, 3) -> uint8 RGB for display."""
    if rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def blend(gray: np.ndarray, color: np.ndarray, t: float) -> np.ndarray:
    """Linear mix gray -> colour, ``t`` in [0, 1] (both images share L*, so this fades chroma in)."""
    t = float(np.clip(t, 0.0, 1.0))
    out = gray.astype(np.float32) * (1.0 - t) + color.astype(np.float32) * t
    return (out + 0.5).astype(np.uint8)


def blend_frames(gray: np.ndarray, color: np.ndarray, n: int = 12, max_side: int = 384) -> list[np.ndarray]:
    """``n`` frames from gray to colour (downscaled so the longer side is at most ``max_side``)."""
    h, w = gray.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        color = cv2.resize(color, size, interpolation=cv2.INTER_AREA)
    return [blend(gray, color, t) for t in np.linspace(0.0, 1.0, max(2, n))]


def gif_bytes(frames: list[np.ndarray], duration_ms: int = 90, hold_ms: int = 700) -> bytes:
    """A looping ping-pong GIF (gray -> colour -> gray), holding on the end frames."""
    from PIL import Image

    seq = frames + frames[-2:0:-1]
    durations = [duration_ms] * len(seq)
    durations[0] = durations[len(frames) - 1] = hold_ms
    images = [Image.fromarray(f) for f in seq]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False)
    return buf.getvalue()


def side_by_side(gray: np.ndarray, color: np.ndarray, gap: int = 8) -> np.ndarray:
    """gray | white gap | colour."""
    sep = np.full((gray.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([gray, sep, color], axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _encode_result(image) -> bytes:
    """DecodedImage -> PNG bytes keeping 16-bit and alpha (what the cache stores)."""
    ok, buf = cv2.imencode(".png", to_bgr_for_write(image, ".png"))
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


class ColorizeService:
    """Colorize uploads through ``colorize_rt.runtime.api.Engine`` with a :class:`ResultCache`."""

    def __init__(
        self,
        model: str = "default",
        backend: str = "auto",
        cache: ResultCache | None = None,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_pixels: int = DEFAULT_UI_MAX_PIXELS,
        threads: int = 0,
    ):
        self.model = str(model)
        self.backend = backend
        self.cache = cache if cache is not None else ResultCache.from_env()
        self.max_upload_mb = float(max_upload_mb)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_pixels = max_pixels
        self.threads = threads
        self._engines: dict[str, object] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> ColorizeService:
        """Configured by ``COLORIZE_RT_MODEL``, ``COLORIZE_RT_BACKEND``, ``COLORIZE_RT_MAX_UPLOAD_MB``
        (how ``launch`` hands settings to the Streamlit script)."""
        env = os.environ
        return cls(
            model=env.get("COLORIZE_RT_MODEL", "default"),
            backend=env.get("COLORIZE_RT_BACKEND", "auto"),
            max_upload_mb=float(env.get("COLORIZE_RT_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)),
        )

    # -- engines ---------------------------------------------------------------------------------
    def engine(self, method: str):
        if method not in METHODS:
            raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
        with self._lock:
            if method not in self._engines:
                try:
                    self._engines[method] = api.Engine(
                        model=self.model, backend=self.backend, method=method, threads=self.threads
                    )
                except ValueError as exc:  # ModelError and friends carry one actionable line
                    raise UserError(str(exc)) from None
            return self._engines[method]

    def engine_info(self, method: str = "classification") -> dict:
        return self.engine(method).info()

    def backend_text(self, method: str = "classification") -> str:
        try:
            info = self.engine_info(method)
        except UserError as exc:
            return f"backend: unavailable ({exc})"
        model = info.get("model") or {}
        name = os.path.basename(model.get("path", "")) or "none"
        detail = f" ({model['sha256'][:12]}, {model.get('precision', '?')})" if model else ""
        return f"backend: {info.get('backend', '?')} · model: {name}{detail}"

    # -- uploads ---------------------------------------------------------------------------------
    def check_upload(self, data: bytes | None, what: str = "image"):
        """Size-limit and decode an upload -> DecodedImage, or UserError with a one-line message."""
        if not data:
            raise UserError(f"no {what} uploaded")
        if len(data) > self.max_upload_bytes:
            raise UserError(f"the {what} is {len(data) / 1048576:.1f} MB; the upload limit is {self.max_upload_mb:g} MB")
        try:
            return api.read_image(data, max_pixels=self.max_pixels)
        except api.ImageError as exc:
            msg = str(exc).removeprefix("<bytes>: ")
            raise UserError(f"the {what} is not a usable image: {msg}") from None

    # -- colorize --------------------------------------------------------------------------------
    def colorize(
        self,
        data: bytes,
        *,
        method: str = "classification",
        temperature: float = DEFAULT_T,
        mode: str = "fit",
        size: int = DEFAULT_SIZE,
        reference: bytes | None = None,
    ) -> ColorizeResult:
        t0 = time.perf_counter()
        image = self.check_upload(data)
        ref_image = None
        extra = {}
        if mode not in MODES:
            raise UserError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
        if method == "transfer":
            ref_image = self.check_upload(reference, what="reference image")
            extra["reference"] = hashlib.sha256(reference).hexdigest()
        engine = self.engine(method)
        info = engine.info()
        key = self.cache_key_for(data, info, method, temperature, mode, size, extra)

        def compute() -> bytes:
            try:
                out = engine.colorize(image, temperature=float(temperature), mode=mode, size=int(size), reference=ref_image)
            except ValueError as exc:  # ImageError, ModelError (e.g. no reference), unknown mode
                raise UserError(str(exc)) from None
            return _encode_result(out)

        png, cached = self.cache.get_or_compute(key, compute)
        result_rgb = api.read_image(png, max_pixels=None).rgb
        color = to_display(result_rgb)
        return ColorizeResult(
            gray=to_display(gray_of(image).rgb),
            color=color,
            png=png,
            cached=cached,
            key=key,
            method=method,
            backend=str(info.get("backend", "?")),
            seconds=time.perf_counter() - t0,
        )

    @staticmethod
    def cache_key_for(data: bytes, info: dict, method: str, temperature: float, mode: str, size: int, extra: dict) -> str:
        model_sha = (info.get("model") or {}).get("sha256") or "none"
        return cache_key(
            data,
            model_sha256=model_sha,
            method=method,
            temperature=temperature,
            mode=mode,
            size=size,
            extra=extra,
        )

    # -- stats ----------------------------------------------------------------------------------
    def cache_stats(self) -> dict:
        return self.cache.info()

    def cache_text(self) -> str:
        return format_cache_info(self.cache.info())


def status_line(res: ColorizeResult) -> str:
    h, w = res.color.shape[:2]
    src = "cache hit" if res.cached else "computed"
    return f"{w}x{h} · {res.method} · {res.backend} · {src} in {res.seconds * 1000:.0f} ms"
