"""End to end, through the runtime exactly as ``colorize-rt`` runs it.

Folder (fit mode): the CLI's own pipeline (``expand_inputs`` -> ``plan_outputs`` -> ``Colorizer`` ->
``run_batch``, decode / network / encode overlapped) on a folder of real photos; images/s over the batch
and the fraction of that wall time the model is busy (union of the runner's ``infer`` intervals).

Tiled: one fresh process per image size (``python -m colorize_rt.bench.e2e --tiled-child ...``), so its
peak RSS is that size's own high-water mark; time covers ``Colorizer.colorize(mode="tiled")`` only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .memory import PeakRss


class BusyClock:
    """Wraps a runner's ``infer`` and records the union of the intervals it was running."""

    def __init__(self, runner):
        self.runner = runner
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._orig = runner.infer
        runner.infer = self._timed

    def _timed(self, feed):
        t0 = time.perf_counter()
        try:
            return self._orig(feed)
        finally:
            with self._lock:
                self.intervals.append((t0, time.perf_counter()))

    def busy_s(self) -> float:
        total, end = 0.0, -np.inf
        for a, b in sorted(self.intervals):
            if b > end:
                total += b - max(a, end)
                end = b
        return total

    def restore(self) -> None:
        self.runner.infer = self._orig


def folder_throughput(
    photos: Path,
    model: str,
    n_images: int = 50,
    backend: str = "auto",
    threads: int = 0,
    size: int = 256,
    timeout: float = 600,
) -> dict:
    """The CLI's batch pipeline over the first ``n_images`` photos of ``photos`` (outputs to a temp dir),
    in a fresh process."""
    args = {
        "photos": str(photos),
        "model": model,
        "n_images": n_images,
        "backend": backend,
        "threads": threads,
        "size": size,
    }
    try:
        return in_child("folder", args, timeout)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"time budget (killed after {timeout:.0f} s)"}


def _folder_child(photos: str, model: str, n_images: int, backend: str, threads: int, size: int) -> dict:
    from ..core.files import list_images
    from ..runtime.api import Colorizer
    from ..runtime.pipeline.folder import Options, expand_inputs, plan_outputs, run_batch

    files = list_images(photos, limit=n_images)
    if len(files) < n_images:
        return {"status": "skipped", "reason": f"{photos} has {len(files)} photos; {n_images} needed"}
    with tempfile.TemporaryDirectory(prefix="colorize-bench-e2e.") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for f in files:  # links, so the folder holds exactly these photos
            (src / f.name).symlink_to(f.resolve())
        found, missing = expand_inputs([str(src)])
        jobs = plan_outputs(found, str(Path(tmp) / "out"), None, many=True)
        with PeakRss() as mem:
            t0 = time.perf_counter()
            engine = Colorizer(model, backend, threads=threads, max_side=size, warn=lambda m: None)
            startup = time.perf_counter() - t0
            clock = BusyClock(engine.runner)
            with engine:
                t0 = time.perf_counter()
                summary = run_batch(jobs, engine, Options(mode="fit", size=size), report=lambda m: None, progress=False)
                wall = time.perf_counter() - t0
            clock.restore()
        written = sum(1 for j in jobs if j.dst.is_file())
    return {
        "status": "ok",
        "folder": str(photos),
        "images": summary.done,
        "failed": summary.failed + len(missing),
        "written": written,
        "model": model,
        "backend": engine.backend,
        "fit_size": size,
        "startup_s": startup,
        "wall_s": wall,
        "images_per_s": summary.done / wall,
        "model_busy_s": clock.busy_s(),
        "model_busy_fraction": clock.busy_s() / wall,
        "infer_calls": len(clock.intervals),
        "peak_rss_mb": mem.peak_mb,
        "target_busy_fraction": 0.9,
    }


def _tiled_child(size: int, model: str, tile: int, overlap: int, backend: str, threads: int, photo: str | None) -> dict:
    import cv2

    from ..runtime.api import Colorizer
    from ..runtime.pipeline.images import DecodedImage
    from .memory import current_rss_mb

    engine = Colorizer(model, backend, threads=threads, max_side=tile, warn=lambda m: None)
    if photo:
        rgb = cv2.cvtColor(cv2.imread(photo, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        yy, xx = np.mgrid[0:size, 0:size]
        rgb = np.stack([(xx * 255 // size), (yy * 255 // size), ((xx ^ yy) & 255)], -1).astype(np.uint8)
    image = DecodedImage(rgb=rgb, source=f"bench-{size}")
    engine.colorize(DecodedImage(rgb=rgb[:tile, :tile].copy()), mode="tiled", tile=tile, overlap=overlap)  # warm-up
    with PeakRss() as mem:
        t0 = time.perf_counter()
        out = engine.colorize(image, mode="tiled", tile=tile, overlap=overlap)
        seconds = time.perf_counter() - t0
    assert out.rgb.shape == rgb.shape
    return {
        "status": "ok",
        "seconds": seconds,
        "peak_rss_mb": mem.peak_mb,
        "start_rss_mb": mem.start_mb,
        "rss_exact": mem.exact,
        "end_rss_mb": current_rss_mb(),
        "image_mb": rgb.nbytes / 2**20,
    }


def tiled_scaling(
    sizes,
    model: str,
    deadline: float,
    tile: int = 512,
    overlap: int = 64,
    backend: str = "auto",
    threads: int = 0,
    photo: str | None = None,
    log=print,
) -> dict:
    """Time and peak RSS of tiled mode per image size; sizes whose predicted time (linear in pixels from the
    previous size) would pass ``deadline`` (a ``time.monotonic()`` value) are skipped."""
    rows = []
    rate = None  # seconds per pixel
    for size in sizes:
        row = {"size": size, "mpixel": size * size / 1e6}
        left = deadline - time.monotonic()
        predicted = rate * size * size * 1.2 + 10 if rate else 0.0
        if left <= 0 or predicted > left:
            row.update(
                status="skipped",
                reason=f"time budget (predicted {predicted:.0f} s, {max(left, 0):.0f} s left)",
            )
            rows.append(row)
            continue
        log(f"[bench] tiled {size}x{size}")
        args = {
            "size": size,
            "model": model,
            "tile": tile,
            "overlap": overlap,
            "backend": backend,
            "threads": threads,
            "photo": photo,
        }
        try:
            row.update(in_child("tiled", args, timeout=max(left, 1)))
            row["s_per_mpixel"] = row["seconds"] / row["mpixel"]
            rate = row["seconds"] / (size * size)
        except subprocess.TimeoutExpired:
            row.update(status="skipped", reason="time budget (killed at the deadline)")
        except Exception as exc:  # noqa: BLE001 - recorded as the result for this size
            row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
    ok = [r for r in rows if r.get("status") == "ok"]
    linearity = None
    if len(ok) >= 2:
        spm = [r["s_per_mpixel"] for r in ok]
        linearity = (
            f"seconds per Mpixel from {ok[0]['size']}² to {ok[-1]['size']}²: "
            + " → ".join(f"{v:.3f}" for v in spm)
            + f" (ratio {spm[-1] / spm[0]:.2f}; 1.00 = exactly linear in pixels); peak RSS "
            + " → ".join(f"{r['peak_rss_mb']:.0f}" for r in ok)
            + " MB, of which the input+output images "
            + " → ".join(f"{2 * r['image_mb']:.0f}" for r in ok)
            + " MB"
        )
    return {
        "status": "ok",
        "model": model,
        "tile": tile,
        "overlap": overlap,
        "sizes": rows,
        "linearity": linearity,
    }


_CHILDREN = {"tiled": lambda **kw: _tiled_child(**kw), "folder": lambda **kw: _folder_child(**kw)}


def in_child(kind: str, args: dict, timeout: float) -> dict:
    """Run a measurement in a fresh interpreter (no torch, no other backends loaded): its peak RSS is its
    own, as for a user's ``colorize-rt`` process. Raises RuntimeError with the child's last stderr line."""
    cmd = [sys.executable, "-m", "colorize_rt.bench.e2e", kind, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return json.loads(lines[-1])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in _CHILDREN:
        sys.exit(f"usage: python -m colorize_rt.bench.e2e {{{','.join(_CHILDREN)}}} JSON")
    print(json.dumps(_CHILDREN[sys.argv[1]](**json.loads(sys.argv[2]))))
