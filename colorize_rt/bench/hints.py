"""The hints phase of ``make bench`` (issue 30): one update of a 1 MP gray photo in the UI or API, i.e. the network at
256 (the fit size) + the hints' propagation and/or the palette's re-weighting + the recombination at full size,
against the same colorization without guidance. Calls are interleaved (plain, 10 hints, palette, both) round by
round in one process, so the ratios compare like with like; the latencies are medians (p50) over the rounds."""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from ..core.cpu import cpu_model
from ..runtime.api import Colorizer
from ..runtime.guidance.spec import make_hint, palette_from_image
from ..runtime.pipeline.images import DecodedImage, gray3
from .inputs import gray_photo

HINT_GOAL_MS = 250.0  # issue 30: one hint update on a 1 MP photo, p50, 2 cores


def _gray_1mp(photo_dir: str | None, width: int = 1200, height: int = 900) -> DecodedImage:
    return DecodedImage(rgb=gray3(gray_photo(photo_dir, width, height)), gray=True)


def hint_latency(model: str = "default", rounds: int = 9, threads: int = 0, photo_dir: str | None = None, log=print) -> dict:
    """p50 latency of plain, hinted (10 hints), paletted and both, on one 1200x900 gray photo.

    Args:
        model: a shipped model name or ONNX path (a classification model: the palette needs its logits).
        rounds: interleaved rounds (one call of each kind per round, after one warm-up round).
        threads: ONNX Runtime threads (0: all cores).
        photo_dir: where the photo comes from (else scikit-image's astronaut).
        log: progress lines.

    Returns:
        ``{"status": "ok", "ms": {kind: p50}, "ratio": {kind: p50 / plain p50}, "goal_ms", "pixels", "model", "cpu"}``.
    """
    image = _gray_1mp(photo_dir)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 1200, 10), rng.integers(0, 900, 10)
    hints = [make_hint(int(x), int(y), "#c03020", 8) for x, y in zip(xs, ys, strict=True)]
    # a reference photo's palette (per-L* band targets: the costlier path; a colour list fits one global target)
    blobs = np.random.default_rng(1).integers(0, 256, (6, 8, 3)).astype(np.uint8)
    palette = palette_from_image(cv2.resize(blobs, (1200, 900), interpolation=cv2.INTER_CUBIC), "bench reference")
    kinds = {"plain": {}, "hints": {"hints": hints}, "palette": {"palette": palette}}
    kinds["both"] = {"hints": hints, "palette": palette}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    with Colorizer(model, backend="cpu", threads=threads) as c:
        for r in range(rounds + 1):
            for kind, kw in kinds.items():
                t0 = time.perf_counter()
                c.colorize(image, **kw)
                if r:  # round 0 warms up
                    times[kind].append(time.perf_counter() - t0)
        log(f"[bench] hints: {rounds} rounds done on {c.backend}")
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {
        "status": "ok",
        "model": model,
        "pixels": image.width * image.height,
        "rounds": rounds,
        "ms": ms,
        "ratio": {k: ms[k] / ms["plain"] for k in ms},
        "goal_ms": HINT_GOAL_MS,
        "cpu": cpu_model(),
    }


def hints_markdown(res: dict | None) -> list[str]:
    """The report's hints section."""
    if not res:
        return []
    lines = ["", "## Hints and palette (one update of a 1200x900 gray photo: network at 256 + guidance + recombine)", ""]
    if res.get("status") != "ok":
        return lines + [f"{res.get('status')}: {res.get('reason') or res.get('error')}"]
    ms, ratio = res["ms"], res["ratio"]
    lines += [
        f"Model `{res['model']}`, p50 of {res['rounds']} interleaved rounds; CPU: {res.get('cpu', '?')}",
        "",
        "| no guidance | 10 hints | palette | hints + palette | goal (hints) |",
        "|---:|---:|---:|---:|---:|",
        f"| {ms['plain']:.0f} ms | {ms['hints']:.0f} ms ({ratio['hints']:.2f}x) | {ms['palette']:.0f} ms "
        f"({ratio['palette']:.2f}x) | {ms['both']:.0f} ms ({ratio['both']:.2f}x) | <= {res['goal_ms']:.0f} ms |",
    ]
    return lines
