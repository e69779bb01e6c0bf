"""The per-image work of an archive job, with no Ray in it: decode, colourise, encode, write, one row.

Both engines run this class: ``local`` calls :meth:`ColorizeWorker.process` in the driver, ``ray`` hands
the class to ``map_batches`` as its callable actor class (one instance, so one model session, per actor).
The outputs of the two engines are therefore the same bytes.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ...core.hashing import file_sha256
from ..api import Colorizer
from ..pipeline.images import DEFAULT_MAX_PIXELS, ImageError, encode_bgr, read_image, to_bgr_for_write
from ..pipeline.modes import recombine_bgr
from .paths import Place, output_name, put_bytes

# The manifest's columns, in order (one row per source).
MANIFEST_FIELDS = ("source", "destination", "status", "error", "ms", "model_sha256", "run_id", "started")


@dataclass
class BatchSettings:
    """Everything an actor needs to rebuild the job's worker (picklable; sent once per actor).

    ``threads`` are ONNX Runtime's intra-op threads (the actor's CPUs; 0: all cores). ONNX Runtime runs the
    graph sequentially, so its inter-op pool is not used (one thread).
    """

    src: Place
    dst: Place
    run_id: str
    model: str = "default"
    backend: str = "auto"
    temperature: float | None = None
    mode: str = "fit"
    size: int = 256
    tile: int = 512
    overlap: int = 64
    scale: float = 1.0
    fmt: str | None = None
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int = 0
    purpose: str = "throughput"  # the backends' performance hint (OpenVINO): many images, not one fast
    warm_up: bool = True  # run the pipeline on synthetic images before the first source (ColorizeWorker.warm_up)
    extra: dict = field(default_factory=dict)

    @property
    def max_side(self) -> int:
        return max(self.size, self.tile) if self.mode == "tiled" else self.size


def actor_threads(cpus: float) -> int:
    """ONNX Runtime threads for an actor holding ``cpus`` CPUs (at least one).

    Args:
        cpus: the actor's CPU reservation (may be fractional).

    Returns:
        A whole number of threads.
    """
    return max(1, math.ceil(cpus - 1e-9))


def manifest_row(
    settings: BatchSettings, rel: str, status: str, error: str = "", ms: float = 0.0, sha: str = "", started: float = 0.0
) -> dict:
    """One manifest row for the source at ``rel``.

    Args:
        settings: the job.
        rel: the source's path relative to SRC.
        status: ``done``, ``skipped`` or ``failed``.
        error: one line, for ``failed``.
        ms: milliseconds spent on it (read to write).
        sha: the model's sha256 (empty for rows that ran no model).
        started: when the work on it started (Unix time; 0 for rows that ran no model).

    Returns:
        A dict with ``MANIFEST_FIELDS``.
    """
    src, dst = settings.src, settings.dst
    return {
        "source": src.url.rstrip("/") + "/" + rel,
        "destination": dst.url.rstrip("/") + "/" + output_name(rel, settings.fmt),
        "status": status,
        "error": error,
        "ms": round(float(ms), 3),
        "model_sha256": sha,
        "run_id": settings.run_id,
        "started": round(float(started), 3),
    }


class ColorizeWorker:
    """One model session and the job's settings; colourises sources given as bytes and writes the outputs.

    Usable as Ray Data's callable actor class: ``__call__`` takes a batch ``{"bytes": ..., "path": ...}``
    (what ``read_binary_files(include_paths=True)`` yields) and returns the manifest rows as columns.
    """

    def __init__(self, settings: BatchSettings):
        self.settings = settings
        self.colorizer = Colorizer(
            settings.model,
            settings.backend,
            "classification",
            settings.threads,
            max_side=settings.max_side,
            warn=lambda msg: print(msg, file=sys.stderr),
            purpose=settings.purpose,
        )
        self.model_sha256 = file_sha256(self.colorizer.model_path)
        self._src_root = settings.src.root.replace("\\", "/").rstrip("/") + "/"
        if settings.warm_up:
            self.warm_up()

    def warm_up(self) -> None:
        """Pay a new worker's one-time costs before its first source, as part of its start-up.

        A fresh process pays them on its first image: the network's first call at each new input shape
        (OpenVINO prepares a dynamic-shape model per shape, about 0.1 s each), the 8-bit recombine's table
        (loaded from the cache folder), the codecs' first use. A Ray actor is always a fresh process, so
        without this its first images run 2-5 times slower than the rest and the start-up leaks into the
        job's work. Synthetic gray images go through ``encode``, the same path as the sources: in fit mode
        a 4:3 landscape and a 4:3 portrait (the network shapes of most camera photos), in tiled mode one
        full tile. Nothing is written; the outputs of later images do not change (tests compare bytes).
        A failure here is left to the first source, which reports it as its row.
        """
        s = self.settings
        if s.mode == "fit":
            shapes = [(300, 400), (400, 300)]  # (h, w): 4:3 landscape and portrait
        else:
            side = min(4096, round(s.tile / s.scale))  # one tile at the scale the tiles are cut from
            shapes = [(side, side)]
        for h, w in shapes:
            ramp = np.linspace(16, 240, w, dtype=np.float32)[None, :] + np.linspace(0, 15, h, dtype=np.float32)[:, None]
            ok, png = cv2.imencode(".png", ramp.astype(np.uint8))
            try:
                if ok:
                    self.encode(png.tobytes(), ".jpg")
            except Exception:  # noqa: BLE001 - a warm-up only; the first source meets the same error and reports it
                return

    def encode(self, data: bytes, ext: str) -> bytes:
        """Colourise one encoded image and encode the result as ``ext``, exactly as ``colorize-rt`` does.

        Args:
            data: the source file's bytes.
            ext: the output extension.

        Returns:
            The output file's bytes.
        """
        s, c = self.settings, self.colorizer
        image = read_image(data, s.max_pixels, limit_hint="raise --max-pixels to allow it")
        if s.mode == "fit":
            ab = c.infer_fit(c.prepare_fit(image, s.size), s.temperature)
            bgr = recombine_bgr(image, ab) if image.alpha is None else None  # the 8-bit table path
            colour = None if bgr is not None else c.finish_fit(image, ab)
        else:
            bgr = None
            colour = c.colorize(image, temperature=s.temperature, mode="tiled", tile=s.tile, overlap=s.overlap, scale=s.scale)
        if bgr is None:
            bgr = to_bgr_for_write(colour, ext)
        return encode_bgr(bgr, ext, quality=s.quality)

    def process(self, rel: str, data: bytes) -> dict:
        """Colourise the source at ``rel`` (its bytes already read) and write its output.

        Args:
            rel: the source's path relative to SRC (``/``-separated).
            data: its bytes.

        Returns:
            Its manifest row (``done`` or ``failed`` with a one-line error; never raises for a bad image).
        """
        t0, started = time.perf_counter(), time.time()
        out_rel = output_name(rel, self.settings.fmt)
        try:
            put_bytes(self.settings.dst, out_rel, self.encode(data, "." + out_rel.rsplit(".", 1)[-1].lower()))
        except ImageError as exc:
            msg = str(exc).replace("<bytes>: ", "").replace("<memory>: ", "")
            return manifest_row(self.settings, rel, "failed", msg, _ms(t0), self.model_sha256, started)
        except Exception as exc:  # noqa: BLE001 - a failed image is a row, not a failed job
            msg = " ".join(str(exc).split())[:300] or type(exc).__name__
            return manifest_row(self.settings, rel, "failed", f"{type(exc).__name__}: {msg}", _ms(t0), self.model_sha256, started)
        return manifest_row(self.settings, rel, "done", "", _ms(t0), self.model_sha256, started)

    def relative(self, path: str) -> str:
        """The path relative to SRC of a path Ray read (its ``path`` column)."""
        path = str(path).replace("\\", "/")
        return path[len(self._src_root) :] if path.startswith(self._src_root) else path.rsplit("/", 1)[-1]

    def __call__(self, batch: dict) -> dict:
        rows = [self.process(self.relative(p), bytes(b)) for p, b in zip(batch["path"], batch["bytes"], strict=True)]
        return {k: [row[k] for row in rows] for k in MANIFEST_FIELDS}


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
