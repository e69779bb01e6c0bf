"""End to end, through the runtime exactly as ``colorize-rt`` runs it.

Folder (fit mode): the CLI's own pipeline (``expand_inputs`` -> ``plan_outputs`` -> ``Colorizer`` ->
``run_batch``, photos in parallel lanes) on a folder of real photos; images/s over the batch and the
fraction of that wall time the model is busy (union of the runner's ``infer`` intervals).

Folder against the network alone (issue 26, ``folder_vs_network``): a folder of small gray PNGs (48 of 256²,
made from the photos) through the whole pipeline (decode, network, recombine, encode; start-up taken out),
per photo, next to one 256² network call alone on PyTorch eager, OpenCV dnn, ONNX Runtime fp32 / INT8 and
``auto``, and next to the same photos colorized one by one. Every measurement is a fresh process (PyTorch's
and OpenBLAS's spinning threads stay out of the others); rounds are interleaved and ratios taken per round.

Tiled: one fresh process per image size (``python -m colorize_rt.bench.e2e --tiled-child ...``), so its
peak RSS is that size's own high-water mark; time covers ``Colorizer.colorize(mode="tiled")`` only.
"""

from __future__ import annotations

import json
import os
import statistics
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
    compare_rounds: int = 3,
) -> dict:
    """The CLI's batch pipeline over the first ``n_images`` photos of ``photos`` (outputs to a temp dir),
    in a fresh process; with ``compare_rounds``, also ``folder_vs_network`` (key ``per_photo``)."""
    args = {
        "photos": str(photos),
        "model": model,
        "n_images": n_images,
        "backend": backend,
        "threads": threads,
        "size": size,
    }
    t0 = time.monotonic()
    try:
        out = in_child("folder", args, timeout)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"time budget (killed after {timeout:.0f} s)"}
    if compare_rounds and out.get("status") == "ok":
        left = timeout - (time.monotonic() - t0)
        try:
            out["per_photo"] = folder_vs_network(photos, model, min(n_images, 48), backend, threads, size, compare_rounds, left)
        except Exception as exc:  # noqa: BLE001 - recorded; the folder figures stand
            out["per_photo"] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return out


NETWORKS = ("torch-fp32", "opencv-dnn", "ort-fp32", "ort-int8", "auto")  # network-alone rows of folder_vs_network
FOLDER_ROWS = ("folder", "photo-by-photo")


def small_gray_folder(photos: Path, out: Path, n: int = 48, size: int = 256) -> Path:
    """``n`` gray ``size``² PNGs made from the first photos of ``photos`` (centre square, area-resized).

    Args:
        photos: a folder of photos.
        out: the folder to write (created).
        n: how many.
        size: their side.

    Returns:
        ``out``.
    """
    import cv2

    from ..core.files import list_images

    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for f in list_images(photos, limit=n * 2):
        g = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if g is None or min(g.shape) < 32:
            continue
        side = min(g.shape)
        y0, x0 = (g.shape[0] - side) // 2, (g.shape[1] - side) // 2
        g = cv2.resize(g[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / f"p{written:03d}.png"), g)
        written += 1
        if written == n:
            return out
    raise RuntimeError(f"{photos}: {written} readable photos; {n} needed")


def folder_vs_network(
    photos: Path,
    model: str = "default",
    n_images: int = 48,
    backend: str = "auto",
    threads: int = 0,
    size: int = 256,
    rounds: int = 3,
    timeout: float = 600,
) -> dict:
    """Per photo: a folder of ``n_images`` gray ``size``² PNGs through the whole pipeline, against the network
    alone on each of ``NETWORKS`` (one ``size``² call, batch 1) and against the photos colorized one by one.

    Args:
        photos: where the PNGs are made from.
        model: the model the folder runs (the network rows use the shipped default and its INT8 copy).
        n_images: PNGs in the folder.
        backend: the folder's backend (as ``--backend``).
        threads: threads (0: all cores).
        size: the PNGs' side and the network input.
        rounds: interleaved rounds; medians and per-round ratios are reported.
        timeout: seconds for the whole comparison (rows that would start after it are left out).

    Returns:
        {"status", "ms": {row: median ms per photo}, "cpu_ms": {...}, "ratios": {name: median}, "rounds": [...]}.
    """
    deadline = time.monotonic() + timeout
    rows: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="colorize-bench-small.") as tmp:
        folder = small_gray_folder(Path(photos), Path(tmp) / "in", n_images, size)
        for _ in range(rounds):
            for row in (*FOLDER_ROWS, *NETWORKS):
                if row in skipped:
                    continue
                left = deadline - time.monotonic()
                if left < 5:
                    skipped.setdefault(row, "time budget")
                    continue
                if row in FOLDER_ROWS:
                    args = {"photos": str(folder), "model": model, "n_images": n_images, "backend": backend, "threads": threads}
                    args |= {"size": size, "one_by_one": row == "photo-by-photo"}
                    kind = "folder"
                else:
                    args, kind = {"network": row, "size": size, "threads": threads}, "network"
                try:
                    res = in_child(kind, args, left)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    skipped[row] = " ".join(str(exc).split())[:200] or type(exc).__name__
                    continue
                if res.get("status") != "ok":
                    skipped[row] = res.get("reason", "?")
                    continue
                per = res["wall_s"] / res["images"] * 1000 if kind == "folder" else res["ms"]
                cpu = res["cpu_s"] / res["images"] * 1000 if kind == "folder" else res["cpu_ms"]
                rows.setdefault(row, []).append({"ms": per, "cpu_ms": cpu, "backend": res.get("backend", "")})
    ms = {k: statistics.median(r["ms"] for r in v) for k, v in rows.items()}
    ratios = {}
    n = min((len(v) for v in rows.values()), default=0)
    for net in (*NETWORKS, "photo-by-photo"):
        if "folder" in rows and net in rows:
            per_round = [b["ms"] / a["ms"] for a, b in zip(rows["folder"][:n], rows[net][:n], strict=True)]
            ratios[f"{net} / folder"] = statistics.median(per_round)
    return {
        "status": "ok" if "folder" in rows else "skipped",
        "reason": skipped.get("folder", ""),
        "images": n_images,
        "size": size,
        "rounds": n,
        "ms": ms,
        "cpu_ms": {k: statistics.median(r["cpu_ms"] for r in v) for k, v in rows.items()},
        "folder_backend": rows["folder"][0]["backend"] if "folder" in rows else "",
        "ratios": ratios,
        "skipped": skipped,
        "targets": {"torch-fp32 / folder": 3.0, "opencv-dnn / folder": 2.0, "photo-by-photo / folder": 1.0},
    }


def folder_vs_network_markdown(res: dict | None) -> list[str]:
    """The report lines of ``folder_vs_network`` (Markdown)."""
    if not res:
        return []
    if res.get("status") != "ok":
        return ["", f"Folder vs the network alone: {res.get('status')}: {res.get('reason') or res.get('error', '')}"]
    lines = [
        "",
        f"Per photo, {res['images']} gray {res['size']}² PNGs (start-up taken out; folder on {res['folder_backend']}) "
        f"against one {res['size']}² network call alone, medians of {res['rounds']} interleaved rounds, each a fresh process:",
        "",
        "| row | ms per photo (wall) | CPU ms per photo | row / folder (per round) | target |",
        "|---|---|---|---|---|",
    ]
    for row, ms in res["ms"].items():
        ratio = res["ratios"].get(f"{row} / folder")
        target = res["targets"].get(f"{row} / folder")
        cells = [f"{ms:.1f}", f"{res['cpu_ms'][row]:.1f}", f"{ratio:.2f}x" if ratio else "", f">= {target}x" if target else ""]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += [f"- {row}: not measured ({why})" for row, why in res.get("skipped", {}).items()]
    return lines


def _network_child(network: str, size: int, threads: int, calls: int = 12) -> dict:
    """One ``size``² network call (batch 1, a real photo's L*) on ``network``, timed ``calls`` times after a warm-up."""
    from ..runtime.backends.runners import OrtRunner
    from ..runtime.backends.shipped_models import resolve_model
    from .inputs import make_feed

    fp32 = resolve_model("default")
    if network == "torch-fp32":
        from .models import load_default_model
        from .runners import TorchRunner

        bm = load_default_model()
        if bm.make_net is None:
            return {"status": "skipped", "reason": "no PyTorch model for the shipped default"}
        runner = TorchRunner(bm.make_net, "fp32", threads)
    elif network == "opencv-dnn":
        from ..runtime.backends.opencv_runner import OpenCVRunner

        runner = OpenCVRunner(fp32, threads)
    elif network in ("ort-fp32", "ort-int8"):
        path = fp32 if network == "ort-fp32" else resolve_model("default-int8")
        runner = OrtRunner(path, threads=threads, spin=False)  # as colorize-rt opens it on the CPU (registry.make_runner)
    elif network == "auto":
        from ..runtime.api import Colorizer

        runner = Colorizer("default", "auto", threads=threads, warn=lambda m: None).runner
    else:
        return {"status": "skipped", "reason": f"unknown network {network}"}
    runner.activate()
    feed = make_feed(size, 1)
    for _ in range(3):
        runner.infer(feed)
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        runner.infer(feed)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"status": "ok", "ms": statistics.median(wall) * 1000, "cpu_ms": statistics.median(cpu) * 1000, "backend": runner.name}


def _folder_child(
    photos: str, model: str, n_images: int, backend: str, threads: int, size: int, one_by_one: bool = False
) -> dict:
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
        purpose = "latency" if one_by_one or len(jobs) < 2 else "throughput"  # as colorize-rt opens it
        with PeakRss() as mem:
            t0 = time.perf_counter()
            engine = Colorizer(model, backend, threads=threads, max_side=size, warn=lambda m: None, purpose=purpose)
            startup = time.perf_counter() - t0
            clock = BusyClock(engine.runner)
            with engine:
                t0, c0 = time.perf_counter(), time.process_time()
                opts = Options(mode="fit", size=size)
                summary = run_batch(jobs, engine, opts, report=lambda m: None, progress=False, lanes=1 if one_by_one else None)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
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
        "cpu_s": cpu,
        "streams": engine.streams,
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


_CHILDREN = {
    "tiled": lambda **kw: _tiled_child(**kw),
    "folder": lambda **kw: _folder_child(**kw),
    "network": lambda **kw: _network_child(**kw),
}


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
