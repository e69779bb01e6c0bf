"""Full-resolution speed (issue 14): camera-size photos through ``colorize-rt`` against the codec floor.

Measured in one run, rounds interleaved, medians reported:

* **end to end vs codec floor**: one ``colorize-rt`` process on N gray JPEGs (default six of 12 MP, start-up
  included) against OpenCV decoding and JPEG-encoding the same files in this process (``cv2.imread`` +
  ``cv2.imwrite`` at the same quality, one file after the other: the least any tool that reads and writes
  these files must spend); the ratio is taken per round, then its median;
* **first call after install**: the same call with an empty cache folder (``COLORIZE_RT_CACHE``), so every
  one-time set-up is paid in it: ONNX Runtime's optimised graph, the table rows of the 8-bit recombine, the
  self-check verdicts; once per round, against that round's floor; the difference to the warm call is the
  one-time set-up, reported. ``auto`` measures the CPU in a detached process after that call
  (``runtime/backends/auto_background.py``): the benchmark waits for it before going on and reports its
  seconds (wall, from the call's end) and the table's own one-time set-up (opening, compiling, timing);
* **by backend**: the same warm and first calls with ``--backend cpu`` (ONNX Runtime fp32), interleaved in
  the same rounds, so ``auto``'s ratios have their reference on the same machine state. Before the rounds,
  ``auto``'s table for the call is settled (measured in the calling process, again while loaded, at most
  ``auto_choice.MAX_TRIES`` times) and the warm calls then only read it (``COLORIZE_RT_AUTO_CACHE=read``);
* **folder throughput**: megapixels per second of that one call;
* **start-up**: wall time of ``colorize-rt`` on one small photo (process start to exit);
* **stages**: decode / network input / network / recombine / encode, timed one after the other in this
  process (milliseconds per image).

The inputs are real photos (``--photos`` folder, else scikit-image's samples) turned gray, enlarged to the
target size and given sensor-like grain (Gaussian, default sigma 3 gray levels) so their JPEG size and
decode cost are those of camera files (a plain enlargement of a small photo compresses and decodes
unrealistically fast); ``grain=0`` gives the smooth worst case.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..core.files import list_images
from ..core.paths import CACHE_ROOT_ENV
from ..runtime.backends.auto_choice import AUTO_CACHE_ENV

REFERENCE_ARGS = ["--backend", "cpu"]  # ONNX Runtime fp32, the reference auto is held to


def _sources(photo_dir: str | Path | None, n: int) -> list[np.ndarray]:
    """``n`` gray photos: from ``photo_dir``, else scikit-image's samples, else the benchmark's photo folder."""
    if not photo_dir:
        try:
            from skimage import data  # dev extra
        except ImportError:
            from .inputs import default_photo_dir

            photo_dir = default_photo_dir()
        else:
            names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "cat")
            grays = [getattr(data, name)() for name in names if hasattr(data, name)]
            grays = [a if a.ndim == 2 else cv2.cvtColor(a[..., :3], cv2.COLOR_RGB2GRAY) for a in grays]
            return [grays[i % len(grays)] for i in range(n)]
    grays = []
    for p in list_images(photo_dir, limit=n * 3) if photo_dir else []:
        g = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if g is not None and min(g.shape) >= 64:
            grays.append(g)
    if not grays:
        raise RuntimeError("no photos to start from: pass --photos DIR or install scikit-image")
    return [grays[i % len(grays)] for i in range(n)]


def make_photos(folder: Path, n: int = 6, size: tuple[int, int] = (4000, 3000), grain: float = 3.0, photo_dir=None) -> list[Path]:
    """Write ``n`` gray JPEGs of ``size`` (w, h) made from real photos; returns their paths.

    Args:
        folder: where to write them.
        n: how many.
        size: width, height (4000 x 3000 = 12 MP).
        grain: sigma of the Gaussian grain added after enlarging, in gray levels (0: none).
        photo_dir: folder of photos to start from (default: scikit-image's samples).

    Returns:
        The JPEG paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(14)
    paths = []
    for i, g in enumerate(_sources(photo_dir, n)):
        w, h = size
        if (g.shape[1] > g.shape[0]) != (w > h):
            g = np.ascontiguousarray(g.T)
        big = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        if grain:
            big += rng.normal(0, grain, big.shape).astype(np.float32)
        p = folder / f"photo_{i:02d}.jpg"
        cv2.imwrite(str(p), np.clip(big, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(p)
    return paths


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def codec_floor(files: list[Path], out_dir: Path, quality: int = 95) -> tuple[float, float]:
    """(wall, CPU) seconds for OpenCV to decode each file (``cv2.imread``, its default 3-channel decode) and
    encode it as a JPEG of ``quality`` (``cv2.imwrite``), one after the other."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        img = cv2.imread(str(f))
        if img is None or not cv2.imwrite(str(out_dir / f.name), img, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise RuntimeError(f"OpenCV could not decode/encode {f}")
    return time.perf_counter() - t0, time.process_time() - c0


def colorize_command() -> list[str]:
    """The ``colorize-rt`` command of this interpreter (its console script, else ``python -m colorize_rt``)."""
    script = Path(sys.executable).with_name("colorize-rt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "colorize_rt"]


def cli_seconds(args: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``colorize-rt ARGS -q`` process (start to exit), with ``env`` added to this
    process's environment; raises on a non-zero exit."""
    t0, c0 = time.perf_counter(), _child_cpu()
    env = {**os.environ, **env} if env else None
    proc = subprocess.run([*colorize_command(), *args, "-q"], capture_output=True, text=True, timeout=timeout, env=env)
    seconds, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"colorize-rt exited {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return seconds, cpu


def _settle_auto_table(args: list[str], purpose: str = "throughput", log=print, runs: int | None = None) -> dict:
    """Run ``colorize-rt ARGS`` until ``auto``'s table for it is settled (measured in that process, measured again
    while loaded, ``MAX_TRIES`` at most); returns the table of the shipped default (+ its INT8 variant, all threads,
    ``purpose``) as JSON, with ``ran``: the runner it opens for a job of ``runs`` photos; or {} where none was made."""
    from ..runtime.backends.auto_background import AUTO_MEASURE_ENV
    from ..runtime.backends.auto_choice import MAX_TRIES, choice_key, choice_path, load_choice
    from ..runtime.backends.selfcheck import model_sha256
    from ..runtime.backends.shipped_models import SHIPPED, assets_dir

    for _ in range(MAX_TRIES + 1):
        cli_seconds(args, env={AUTO_MEASURE_ENV: "sync"})
    key = choice_key([model_sha256(assets_dir() / SHIPPED[name]) for name in ("default", "default-int8")], 0, purpose)
    try:
        table = json.loads(choice_path(key).read_text())
    except (OSError, ValueError):
        return {}
    choice = load_choice(key)
    table["ran"] = choice.winner_for(runs).label if choice is not None else table["chosen"]
    share = table.get("others_share") or 0.0
    log(
        f"[fullres] auto's table: fastest {table['chosen']}, for this job {table['ran']} "
        f"(others took {share:.0%} of the CPU, tries {table.get('tries')})"
    )
    return table


def _first_call(args: list[str], cache: Path) -> dict:
    """The first call after install (empty ``cache``), then the wait for ``auto``'s background measurement."""
    from ..runtime.backends.auto_background import AUTO_MEASURE_ENV, pending

    first, first_cpu = cli_seconds(args, env={CACHE_ROOT_ENV: str(cache), AUTO_MEASURE_ENV: "background"})
    t0 = time.perf_counter()
    folder = cache / "auto-choice"
    while folder.is_dir() and pending(folder) and time.perf_counter() - t0 < 600:
        time.sleep(0.1)
    waited = time.perf_counter() - t0
    saved = [p for p in folder.glob("*.json") if not p.name.endswith(".state.json")] if folder.is_dir() else []
    tables = [json.loads(p.read_text()) for p in saved]
    return {
        "first_call_s": first,
        "first_call_cpu_s": first_cpu,
        "background_measure_s": waited if tables else 0.0,  # from the call's end to the table on disk
        "table_setup_s": sum(t["open_s"] + t["timing_s"] for t in tables),  # opening, compiling, timing
    }


def stage_breakdown(files: list[Path], out_dir: Path, model: str = "default", backend: str = "cpu") -> dict:
    """Per stage, one after the other in this process: {"wall_ms": {...}, "cpu_ms": {...}} per image
    (medians; the first image is done twice and its first pass dropped: it also loads or builds the table
    rows its ab values need). CPU time counts every thread of the process."""
    from ..runtime.api import Colorizer
    from ..runtime.pipeline.images import read_image, write_bgr, write_image
    from ..runtime.pipeline.modes import recombine, recombine_bgr

    names = ("decode", "network_input", "network", "recombine", "encode")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    with Colorizer(model, backend, warn=lambda m: None) as c:
        for i, f in enumerate([files[0], *files]):
            marks = [(time.perf_counter(), time.process_time())]
            image = read_image(f)
            marks.append((time.perf_counter(), time.process_time()))
            L = c.prepare_fit(image, 256)
            marks.append((time.perf_counter(), time.process_time()))
            ab = c.infer_fit(L)
            marks.append((time.perf_counter(), time.process_time()))
            bgr = recombine_bgr(image, ab)
            colour = recombine(image, ab) if bgr is None else None
            marks.append((time.perf_counter(), time.process_time()))
            dst = out_dir / f"stage_{f.stem}.jpg"
            write_bgr(bgr, dst) if bgr is not None else write_image(colour, dst)
            marks.append((time.perf_counter(), time.process_time()))
            if i:
                for k, (a, b) in zip(names, zip(marks, marks[1:], strict=False), strict=True):
                    wall[k].append((b[0] - a[0]) * 1000)
                    cpu[k].append((b[1] - a[1]) * 1000)
    return {
        "wall_ms": {k: statistics.median(v) for k, v in wall.items()},
        "cpu_ms": {k: statistics.median(v) for k, v in cpu.items()},
    }


def measure_fullres(
    n: int = 6,
    size: tuple[int, int] = (4000, 3000),
    repeats: int = 3,
    grain: float = 3.0,
    photo_dir=None,
    small: Path | None = None,
    log=print,
) -> dict:
    """The whole full-resolution benchmark (see the module doc); returns a JSON-able dict."""
    from ..core.cpu import cpu_model

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="colorize-fullres.") as tmp:
        tmp = Path(tmp)
        files = make_photos(tmp / "in", n, size, grain, photo_dir)
        small = small or make_photos(tmp / "small", 1, (288, 192), grain, photo_dir)[0]
        mp = n * size[0] * size[1] / 1e6
        rounds = []
        call = [*map(str, files), "-o", str(tmp / "out")]
        table = _settle_auto_table(call, log=log, runs=n)  # also warms the caches: optimised graphs, compiled models, page cache
        _settle_auto_table([str(small), "-o", str(tmp / "small_color.jpg")], "latency", log=lambda m: None)
        cli_seconds([*call, *REFERENCE_ARGS])
        read_only = {AUTO_CACHE_ENV: "read"}  # the settled table, never measured again inside a timed call
        for r in range(repeats):
            floor, floor_cpu = codec_floor(files, tmp / "floor")
            whole, whole_cpu = cli_seconds(call, env=read_only)
            ref, ref_cpu = cli_seconds([*call, *REFERENCE_ARGS])
            start, start_cpu = cli_seconds([str(small), "-o", str(tmp / "small_color.jpg")], env=read_only)
            first = _first_call([*map(str, files), "-o", str(tmp / "out_first")], tmp / f"fresh-cache-{r}")
            ref_first = _first_call([*map(str, files), "-o", str(tmp / "out_first"), *REFERENCE_ARGS], tmp / f"fresh-ref-{r}")
            rounds.append(
                {
                    "floor_s": floor,
                    "colorize_s": whole,
                    "ratio": whole / floor,
                    "first_call_s": first["first_call_s"],
                    "first_call_ratio": first["first_call_s"] / floor,
                    "setup_s": first["first_call_s"] - whole,
                    "background_measure_s": first["background_measure_s"],
                    "table_setup_s": first["table_setup_s"],
                    "small_photo_s": start,
                    "floor_cpu_s": floor_cpu,
                    "colorize_cpu_s": whole_cpu,
                    "cpu_ratio": whole_cpu / floor_cpu,
                    "first_call_cpu_s": first["first_call_cpu_s"],
                    "small_photo_cpu_s": start_cpu,
                    "ref_colorize_s": ref,
                    "ref_ratio": ref / floor,
                    "ref_cpu_s": ref_cpu,
                    "ref_first_call_s": ref_first["first_call_s"],
                    "ref_first_call_ratio": ref_first["first_call_s"] / floor,
                    "auto_vs_ref": whole / ref,
                }
            )
            log(
                f"[fullres] round {r + 1}/{repeats}: floor {floor:.2f} s, auto {whole:.2f} s, ONNX Runtime fp32 {ref:.2f} s, "
                f"first call auto {first['first_call_s']:.2f} s (then measured {first['background_measure_s']:.2f} s), "
                f"ONNX Runtime fp32 {ref_first['first_call_s']:.2f} s, small photo {start:.2f} s"
            )
        stages = stage_breakdown(files[: min(n, 3)], tmp)
        sizes = [f.stat().st_size / 1e6 for f in files]
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    return {
        "status": "ok",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "images": n,
        "size": list(size),
        "megapixels_total": mp,
        "jpeg_mb_median": statistics.median(sizes),
        "grain_sigma": grain,
        "repeats": repeats,
        "rounds": rounds,
        "median": med,
        "ratio_median": med["ratio"],
        "cpu_ratio_median": med["cpu_ratio"],
        "target_ratio": 2.0,
        "first_call_ratio_median": med["first_call_ratio"],
        "target_first_call_ratio": 3.0,
        "setup_s_median": med["setup_s"],
        "auto_table": {k: table.get(k) for k in ("chosen", "ran", "others_share", "loaded", "tries", "open_s", "timing_s")},
        "reference": "--backend cpu (ONNX Runtime fp32)",
        "ref_ratio_median": med["ref_ratio"],
        "ref_first_call_ratio_median": med["ref_first_call_ratio"],
        "auto_vs_ref_median": med["auto_vs_ref"],
        "folder_mp_per_s": mp / med["colorize_s"],
        "startup_s": med["small_photo_s"],
        "target_startup_s": 0.5,
        "stages_ms_per_image": stages,
    }


def fullres_markdown(res: dict | None) -> list[str]:
    """The report section (Markdown lines)."""
    lines = ["", "## Full resolution (issue 14)", ""]
    if not res or res.get("status") != "ok":
        return lines + [f"{(res or {}).get('status', 'not run')}: {(res or {}).get('reason') or (res or {}).get('error', '')}"]
    w, h = res["size"]
    m = res["median"]
    lines += [
        f"{res['images']} gray JPEGs of {w}x{h} ({w * h / 1e6:.0f} MP, {res['jpeg_mb_median']:.1f} MB each, grain sigma "
        f"{res['grain_sigma']}), {res['repeats']} interleaved rounds, medians; CPU {res['cpu']} ({res['cores']} cores), "
        f"load average {res['load_average_before_after'][0]} -> {res['load_average_before_after'][1]}.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| one `colorize-rt` call on all {res['images']} (start-up included) | {m['colorize_s']:.2f} s | |",
        f"| OpenCV decode + JPEG encode of the same files (codec floor) | {m['floor_s']:.2f} s | |",
        f"| end to end / codec floor (median of per-round ratios) | **{res['ratio_median']:.2f}x** | <= {res['target_ratio']}x |",
        f"| CPU time (user + system): `colorize-rt` / codec floor | {m['colorize_cpu_s']:.2f} s / {m['floor_cpu_s']:.2f} s "
        f"= {res['cpu_ratio_median']:.2f}x | |",
    ]
    if "first_call_ratio_median" in res:  # results recorded before the first-call row have none
        lines += [
            f"| first call after install (empty cache folder) / codec floor | **{res['first_call_ratio_median']:.2f}x** "
            f"({m['first_call_s']:.2f} s) | <= {res['target_first_call_ratio']}x |",
            f"| one-time set-up paid by that first call (first call - warm call) | {res['setup_s_median']:.2f} s | |",
        ]
    if "ref_ratio_median" in res:  # results recorded before auto measured in the background have none
        t = res["auto_table"]
        lines += [
            f"| then `auto`'s measurement, in a detached low-priority process after the call (wall, from the call's end) "
            f"| {m['background_measure_s']:.2f} s | |",
            f"| its one-time set-up, from the table (opening, compiling, self-checks, timing) | {m['table_setup_s']:.2f} s | |",
            f"| ONNX Runtime fp32 (`--backend cpu`), same rounds: end to end / codec floor | {res['ref_ratio_median']:.2f}x "
            f"({m['ref_colorize_s']:.2f} s) | |",
            f"| ONNX Runtime fp32: first call after install / codec floor | {res['ref_first_call_ratio_median']:.2f}x "
            f"({m['ref_first_call_s']:.2f} s) | |",
            f"| `auto` / ONNX Runtime fp32, warm (median of per-round ratios) | {res['auto_vs_ref_median']:.2f}x | |",
            f"| `auto`'s table for this call (settled before the rounds) | ran {t.get('ran')} (fastest network: "
            f"{t.get('chosen')}), other processes took "
            f"{(t.get('others_share') or 0):.0%} of the CPU, {t.get('tries')} tr{'y' if t.get('tries') == 1 else 'ies'} | |",
        ]
    lines += [
        f"| folder throughput | {res['folder_mp_per_s']:.1f} MP/s | |",
        f"| start-up: `colorize-rt` on one small photo, wall | **{res['startup_s']:.2f} s** | <= {res['target_startup_s']} s |",
        f"| start-up, CPU time | {m['small_photo_cpu_s']:.2f} s | |",
        "",
        "Wall times depend on what else the machine runs (load average above); CPU times much less.",
        "",
        "Stages of one photo, one after the other in one process (ms per image, median):",
        "",
        "| stage | " + " | ".join(k.replace("_", " ") for k in res["stages_ms_per_image"]["cpu_ms"]) + " |",
        "|---|" + "---|" * len(res["stages_ms_per_image"]["cpu_ms"]),
        "| CPU (all threads) | " + " | ".join(f"{v:.0f}" for v in res["stages_ms_per_image"]["cpu_ms"].values()) + " |",
        "| wall | " + " | ".join(f"{v:.0f}" for v in res["stages_ms_per_image"]["wall_ms"].values()) + " |",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.fullres``: run ``measure_fullres`` and print (and optionally save) the report."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m benchmarks.fullres", description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--size", default="4000x3000", help="WxH of each photo")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--grain", type=float, default=3.0)
    ap.add_argument("--photos", help="folder of real photos to start from (default: scikit-image's samples)")
    ap.add_argument("--out", help="also write fullres.json and fullres.md into this folder")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    res = measure_fullres(a.images, (w, h), a.repeats, a.grain, a.photos, log=lambda m: print(m, file=sys.stderr))
    text = "\n".join(fullres_markdown(res)).strip() + "\n"
    print(text)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fullres.json").write_text(json.dumps(res, indent=2))
        (out / "fullres.md").write_text(text)
