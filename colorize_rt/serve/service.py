"""The one service layer both UIs (and the HTTP endpoint) call: upload checks, cached colorization,
gray/colour blends, blend animation frames and GIF, side-by-side, PNG downloads. No torch, no UI code.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..core.constants import DEFAULT_T
from ..runtime import api
from ..runtime.api import METHODS, MODES
from ..runtime.backends.registry import BackendError
from ..runtime.guidance.spec import (
    GuidanceError,
    PaletteTarget,
    PointHint,
    hints_from_json,
    palette_from_colors,
    palette_from_image,
)
from ..runtime.limits import MAX_PIXELS, SIZE, TEMPERATURE, ParameterError
from ..runtime.pipeline.images import ImageError, image_header, to_bgr_for_write
from ..runtime.pipeline.modes import gray_of
from .admission import Admission, AdmissionConfig, TooLarge, estimate_bytes, network_pixels
from .cache import ResultCache, cache_key, format_cache_info

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "classification": "classification (313 bins, annealed mean)",
    "l2": "L2 regression",
    "transfer": "transfer from a reference image",
}
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_UI_MAX_PIXELS = 50_000_000
DEFAULT_SIZE = 256
VIDEO_UI_SECONDS = 10.0  # the UI's Video tab colorizes at most this much of a clip
_VIDEO_LOCK = threading.Lock()  # one video at a time (each already uses every core)


class UserError(ValueError):
    """A request the user can fix (not an image, bad parameter, no model, missing reference); one line.
    ``status`` is the HTTP status the API answers with."""

    status = 400


class ModelUnavailable(UserError):
    """The server's model cannot be opened or fails on a test image: not the request's fault (HTTP 503).
    ``ColorizeService.open`` raises it at start-up, so such a server refuses to start."""

    status = 503


class RequestTooLarge(UserError):
    """An upload, canvas or request over the server's limits (HTTP 413); one line saying what to change."""

    status = 413


SERVE_LIMIT_HINT = "this server's limit is set with colorize-rt serve --max-pixels"


@dataclass
class ColorizeResult:
    """One colorization: the full-fidelity ``png`` (16-bit / alpha kept) and where it came from. ``gray``
    (the input's lightness, what the network sees) and ``color`` (the result) are uint8 (H, W, 3) arrays
    for display, decoded on first use (the HTTP API never needs them)."""

    png: bytes
    cached: bool
    key: str
    method: str
    backend: str
    seconds: float
    source: bytes = field(default=b"", repr=False)

    @functools.cached_property
    def gray(self) -> np.ndarray:
        return to_display(gray_of(api.read_image(self.source, max_pixels=None)).rgb)

    @functools.cached_property
    def color(self) -> np.ndarray:
        return to_display(api.read_image(self.png, max_pixels=None).rgb)


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


def preview_side_by_side(gray: np.ndarray, color: np.ndarray, gap: int = 8) -> np.ndarray:
    """gray | white gap | colour, for the UIs (uint8 RGB arrays; ``runtime.images.side_by_side`` is the
    gap-less file version)."""
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
    """Colorize uploads through ``colorize_rt.runtime.api.Colorizer`` with a :class:`ResultCache`."""

    def __init__(
        self,
        model: str = "default",
        backend: str = "auto",
        cache: ResultCache | None = None,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_pixels: int = DEFAULT_UI_MAX_PIXELS,
        threads: int = 0,
        admission: Admission | AdmissionConfig | None = None,
    ):
        self.model = str(model)
        self.backend = backend
        self.cache = cache if cache is not None else ResultCache.from_env()
        self.max_upload_mb = float(max_upload_mb)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_pixels = int(max_pixels)
        self.threads = threads
        if not isinstance(admission, Admission):
            admission = Admission(admission or AdmissionConfig.from_env())
        self.admission = admission
        self._engines: dict[str, object] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> ColorizeService:
        """Configured by ``COLORIZE_RT_MODEL``, ``COLORIZE_RT_BACKEND``, ``COLORIZE_RT_MAX_UPLOAD_MB``,
        ``COLORIZE_RT_MAX_PIXELS`` and the admission variables (how ``launch`` hands settings to the
        Streamlit script)."""
        env = os.environ
        return cls(
            model=env.get("COLORIZE_RT_MODEL", "default"),
            backend=env.get("COLORIZE_RT_BACKEND", "auto"),
            max_upload_mb=float(env.get("COLORIZE_RT_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)),
            max_pixels=int(MAX_PIXELS.check(env.get("COLORIZE_RT_MAX_PIXELS", DEFAULT_UI_MAX_PIXELS))),
        )

    # -- engines ---------------------------------------------------------------------------------
    def engine(self, method: str):
        if method not in METHODS:
            raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
        with self._lock:
            if method not in self._engines:
                try:
                    self._engines[method] = api.Colorizer(
                        model=self.model, backend=self.backend, method=method, threads=self.threads
                    )
                except (ValueError, BackendError) as exc:  # ModelError, BackendError: one actionable line
                    raise ModelUnavailable(f"the server's model cannot be used: {exc}") from None
            return self._engines[method]

    def open(self) -> None:
        """Open the model and colorize a small gray image with it, before serving anything.

        Raises:
            ModelUnavailable: the model cannot be opened on the backend, or fails on the test image (one line).
        """
        engine = self.engine("classification")
        _, png = cv2.imencode(".png", np.tile(np.arange(0, 256, 8, dtype=np.uint8), (24, 1)))
        try:
            engine.colorize(api.read_image(png.tobytes()), size=64)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises many types for a model that cannot run
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelUnavailable(f"the server's model fails on a test image: {first}") from None

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
    def check_bytes(self, data: bytes | None, what: str = "image") -> None:
        """Present and under the upload limit (no decoding), else UserError / RequestTooLarge."""
        if not data:
            raise UserError(f"no {what} uploaded")
        if len(data) > self.max_upload_bytes:
            raise RequestTooLarge(
                f"the {what} is {len(data):,} bytes; the upload limit is {self.max_upload_mb:g} MB "
                f"({self.max_upload_bytes:,} bytes)"
            )

    def check_header(self, data: bytes, what: str = "image"):
        """The upload's header (no pixels decoded) -> ImageHeader, checked against ``max_pixels``."""
        try:
            header = image_header(data, max_pixels=None)
        except ImageError as exc:
            raise UserError(f"the {what} is not a usable image: {exc}") from None
        if self.max_pixels > 0 and header.pixels > self.max_pixels:
            raise RequestTooLarge(
                f"the {what} declares a {header.width}x{header.height} canvas ({header.pixels / 1e6:.0f} MP), "
                f"over this server's {self.max_pixels / 1e6:g} MP limit (possible decompression bomb; "
                f"colorize-rt serve --max-pixels sets the limit)"
            )
        return header

    def check_upload(self, data: bytes | None, what: str = "image"):
        """Size-limit and decode an upload -> DecodedImage, or UserError with a one-line message."""
        self.check_bytes(data, what)
        try:
            return api.read_image(data, max_pixels=self.max_pixels, limit_hint=SERVE_LIMIT_HINT)
        except api.ImageError as exc:
            msg = str(exc).removeprefix("<bytes>: ")
            raise UserError(f"the {what} is not a usable image: {msg}") from None

    @staticmethod
    def validate(method: str, temperature, mode: str, size) -> tuple[str, float, str, int]:
        """Check the request parameters against the shared bounds (``runtime.limits``) -> validated values."""
        if method not in METHODS:
            raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
        if mode not in MODES:
            raise UserError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
        try:
            return method, TEMPERATURE.check(temperature), mode, SIZE.check(size)
        except ParameterError as exc:
            raise UserError(str(exc)) from None

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
        hints: str | list | None = None,
        palette: str | PaletteTarget | None = None,
    ) -> ColorizeResult:
        """Colorize an upload (cached). A cache hit hashes the bytes and decodes nothing; a miss waits
        for admission (memory budget, queue) and then decodes, colorizes and encodes a PNG.

        ``hints`` (a JSON list of ``{"x", "y", "color", "radius"}``, text or parsed, or ``PointHint``s) and
        ``palette`` (``"#hex,#hex,..."`` or a ``PaletteTarget``) guide the colours (``runtime.guidance``); both
        are part of the cache key.

        Raises:
            UserError: bad input or parameters (RequestTooLarge: over a limit).
            Overloaded: the server is full; retry later.
        """
        t0 = time.perf_counter()
        method, temperature, mode, size = self.validate(method, temperature, mode, size)
        self.check_bytes(data)
        extra = {}
        if method == "transfer":
            self.check_bytes(reference, what="reference image")
            extra["reference"] = hashlib.sha256(reference).hexdigest()
        guide = self.guidance(hints, palette)
        if guide["hints"]:
            extra["hints"] = [h.key() for h in guide["hints"]]
        if guide["palette"] is not None:
            extra["palette"] = guide["palette"].key()
        engine = self.engine(method)
        info = engine.info()
        key = self.cache_key_for(data, info, method, temperature, mode, size, extra)

        def compute() -> bytes:
            kw = {"method": method, "temperature": temperature, "mode": mode, "size": size, "reference": reference}
            return self._compute(engine, data, **kw, **guide)

        png, cached = self.cache.get_or_compute(key, compute)
        return ColorizeResult(
            png=png,
            cached=cached,
            key=key,
            method=method,
            backend=str(info.get("backend", "?")),
            seconds=time.perf_counter() - t0,
            source=data,
        )

    def _admit(self, data: bytes, method: str, mode: str, size: int, reference: bytes | None):
        """Estimate the request's working memory from the headers and enter the admission gate."""
        header = self.check_header(data)
        network = method != "transfer"
        cost = estimate_bytes(header, mode, size, network=network)
        if reference is not None and not network:
            cost += estimate_bytes(self.check_header(reference, "reference image"), mode, size, network=False)
        what = f"a {header.width}x{header.height} image in mode={mode}" + (f" at size={size}" if mode == "fit" else "")
        try:
            fix = "use mode=fit or a smaller image" if mode == "tiled" else "send a smaller image or use a smaller size"
            self.admission.check_size(cost, network_pixels(header, mode, size) if network else 0, what, fix)
        except TooLarge as exc:
            raise RequestTooLarge(str(exc)) from None
        return self.admission.admit(cost)

    @staticmethod
    def guidance(hints, palette) -> dict:
        """Parse a request's hints and palette -> ``{"hints": [PointHint], "palette": PaletteTarget | None}``.

        Raises:
            UserError: malformed hints or palette (one line).
        """
        try:
            if hints is None or hints == "" or hints == []:
                parsed: list[PointHint] = []
            elif isinstance(hints, list) and all(isinstance(h, PointHint) for h in hints):
                parsed = list(hints)
            else:
                parsed = hints_from_json(hints)
            target = palette if palette is None or isinstance(palette, PaletteTarget) else palette_from_colors(palette)
        except GuidanceError as exc:
            raise UserError(str(exc)) from None
        return {"hints": parsed, "palette": target}

    def palette_from_upload(self, data: bytes) -> PaletteTarget:
        """A palette from an uploaded reference photo's colours (the UI's palette image).

        Raises:
            UserError: not a usable image, or one without colour (one line).
        """
        image = self.check_upload(data, what="palette image")
        try:
            return palette_from_image(image.rgb, "palette image")
        except GuidanceError as exc:
            raise UserError(str(exc)) from None

    def _compute(
        self, engine, data: bytes, *, method: str, temperature: float, mode: str, size: int, reference, hints=None, palette=None
    ) -> bytes:
        with self._admit(data, method, mode, size, reference if method == "transfer" else None):
            image = self.check_upload(data)
            ref_image = self.check_upload(reference, what="reference image") if method == "transfer" else None
            guided = {"hints": hints, "palette": palette} if hints or palette is not None else {}
            try:
                out = engine.colorize(image, temperature=temperature, mode=mode, size=size, reference=ref_image, **guided)
            except ValueError as exc:  # ImageError, ModelError (e.g. no reference)
                raise UserError(str(exc)) from None
            del image, ref_image  # the input is not needed while the result is encoded
            return _encode_result(out)

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
    def colorize_video_file(self, path: str, out_dir: str, stabilize: bool = True) -> tuple[str, str]:
        """A short clip for the UI's Video tab: at most ``VIDEO_UI_SECONDS`` of it (runtime.video).

        Args:
            path: the uploaded video.
            out_dir: where to write ``<stem>_color.mp4``.
            stabilize: the temporal stabiliser (off: per-frame colour).

        Returns:
            (output path, one status line).

        Raises:
            UserError: not a usable video (one line); RequestTooLarge: frames over ``max_pixels``.
        """
        from ..runtime.video.io import VideoError, probe_video
        from ..runtime.video.job import VideoOptions, colorize_video

        try:
            info = probe_video(path)
        except VideoError as exc:
            raise UserError(f"the video is not usable: {str(exc).split(': ', 1)[-1]}") from None
        if self.max_pixels > 0 and info.width * info.height > self.max_pixels:
            raise RequestTooLarge(f"{info.width}x{info.height} frames are over this server's {self.max_pixels / 1e6:g} MP limit")
        cut = info.duration > VIDEO_UI_SECONDS
        opts = VideoOptions(preset="veryfast", stabilize=stabilize, duration=VIDEO_UI_SECONDS if cut else None)
        dst = os.path.join(out_dir, f"{os.path.splitext(os.path.basename(path))[0]}_color.mp4")
        engine = self.engine("classification")
        with _VIDEO_LOCK:
            try:
                res = colorize_video(path, engine, opts, dst, report=lambda msg: None)
            except VideoError as exc:
                raise UserError(f"the video is not usable: {str(exc).split(': ', 1)[-1]}") from None
        first = f"the first {VIDEO_UI_SECONDS:g} s: " if cut else ""
        return str(res.dst), f"{first}{res.frames} frames in {res.seconds:.1f} s, {res.cuts} scene cuts"

    def cache_stats(self) -> dict:
        return self.cache.info()

    def cache_text(self) -> str:
        return format_cache_info(self.cache.info())


def status_line(res: ColorizeResult) -> str:
    h, w = res.color.shape[:2]
    src = "cache hit" if res.cached else "computed"
    return f"{w}x{h} · {res.method} · {res.backend} · {src} in {res.seconds * 1000:.0f} ms"
