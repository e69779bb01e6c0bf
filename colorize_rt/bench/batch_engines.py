"""``colorize-rt batch`` engines (issue 27): images/s of ``--engine local`` against Ray with 1 and 2 actors.

Measured in one run on one machine, rounds interleaved, medians reported, on two sets:

* **mixed**: 50 small photos of mixed kinds (``archive_photos.make_archive``: 8/16-bit, gray, RGBA, CMYK,
  EXIF-rotated, ...), the archive of the tests;
* **12 MP**: six 4000 x 3000 gray JPEGs with sensor-like grain (``fullres.make_photos``).

Configurations at equal resources: local with 1 thread against 1 actor x 1 CPU; local with 2 threads
against 1 actor x 1.9 CPU (2 threads); and the default pool (one actor per CPU). Each job is split into its
start-up (the call to the first image's start: listing, auto's backend pick, actors' start and model load)
and its work (the first image's start to the job's return: every image, every write, the manifest); Ray's
own ``ray.init`` is measured apart, once. Ray's overhead is ``ray work seconds / local work seconds - 1``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# (label, engine, actors, cpus per actor): local's "cpus per actor" is its ONNX Runtime threads
CONFIGS = (
    ("local, 1 thread", "local", None, 1.0),
    ("ray, 1 actor x 1 CPU", "ray", 1, 1.0),
    ("local, 2 threads", "local", None, 2.0),
    ("ray, 1 actor x 1.9 CPU (2 threads)", "ray", 1, 1.9),
    ("ray, default pool", "ray", None, None),
)
PAIRS = (("ray, 1 actor x 1 CPU", "local, 1 thread"), ("ray, 1 actor x 1.9 CPU (2 threads)", "local, 2 threads"))


def _quiet(msg: str) -> None:
    pass


# The local engine runs in a fresh process, as `colorize-rt batch --engine local` does: in this process it
# would find the backends warm (OpenVINO compiles each new input shape once per process) where Ray's
# actors, new processes, start cold.
_LOCAL_JOB = """
import json, sys
from colorize_rt.runtime.batch.job import run_batch_job
s = run_batch_job(sys.argv[1], sys.argv[2], engine="local", cpus_per_actor=float(sys.argv[3]), progress=False,
                  report=lambda m: None)
print(json.dumps({"seconds": s.seconds, "startup": s.startup_seconds, "done": s.done, "failed": s.failed,
                  "line": s.line(), "ms": [r["ms"] for r in s.rows]}))
"""


def _one_job(src: Path, out_root: Path, label: str, engine: str, actors, cpus) -> dict:
    from ..runtime.batch.job import run_batch_job

    dst = out_root / f"{label.replace(' ', '_').replace(',', '')}-{time.monotonic_ns()}"
    if engine == "local":
        cmd = [sys.executable, "-c", _LOCAL_JOB, str(src), str(dst), str(cpus)]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800).stdout.splitlines()[-1])
        wall, seconds, startup, done, failed, line = (
            res["seconds"],
            res["seconds"],
            res["startup"],
            res["done"],
            res["failed"],
            res["line"],
        )
        ms, plan = res["ms"], ""
    else:
        t0 = time.perf_counter()
        s = run_batch_job(str(src), str(dst), engine=engine, actors=actors, cpus_per_actor=cpus, progress=False, report=_quiet)
        wall = time.perf_counter() - t0
        seconds, startup, done, failed, line = s.seconds, s.startup_seconds, s.done, s.failed, s.line()
        ms, plan = [r["ms"] for r in s.rows], s.plan
    if failed or not done:
        raise RuntimeError(f"{label}: {line}")
    startup += wall - seconds
    return {"seconds": wall - startup, "startup_s": startup, "images": done, "plan": plan, "ms": ms}


def measure_batch_engines(
    photo_dir: str | Path | None = None,
    n_mixed: int = 50,
    n_full: int = 6,
    full_size: tuple[int, int] = (4000, 3000),
    rounds: int = 2,
    ray_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Time every configuration of ``CONFIGS`` on both sets, ``rounds`` times interleaved.

    Args:
        photo_dir: real photos to build the sets from (default: the benchmark's photo folder).
        n_mixed: photos in the mixed set.
        n_full: 12 MP photos.
        full_size: their width and height.
        rounds: repetitions of every configuration (medians reported).
        ray_cpus: CPUs of the local Ray (None: all of this machine's).
        log: progress lines.

    Returns:
        ``{"ray_startup_s", "sets": {name: {label: {...}}}, "overhead": {...}, "cpu": ...}``.
    """
    from ..core.cpu import cpu_flags, cpu_model
    from ..runtime.batch.ray_engine import import_ray
    from .archive_photos import make_archive
    from .fullres import make_photos
    from .inputs import default_photo_dir

    ray = import_ray()
    photo_dir = photo_dir or default_photo_dir()
    if photo_dir is None:
        raise RuntimeError("no photo folder: pass --photos DIR")
    out: dict = {"cpu": cpu_model(), "vnni": "avx512_vnni" in cpu_flags(), "rounds": rounds, "sets": {}, "overhead": {}}
    with tempfile.TemporaryDirectory(prefix="colorize-batch-bench.") as tmp:
        tmp = Path(tmp)
        sets = {"mixed": tmp / "mixed", "12mp": tmp / "12mp"}
        make_archive(sets["mixed"], photo_dir, n=n_mixed, side=128)
        make_photos(sets["12mp"], n_full, full_size)
        started = not ray.is_initialized()
        t0 = time.perf_counter()
        if started:
            ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False)
        out["ray_startup_s"] = time.perf_counter() - t0
        try:
            times: dict = {name: {label: [] for label, *_ in CONFIGS} for name in sets}
            worker_ms: dict = {name: {label: [] for label, *_ in CONFIGS} for name in sets}
            starts: dict = {name: {label: [] for label, *_ in CONFIGS} for name in sets}
            info: dict = {name: {} for name in sets}
            for r in range(rounds):
                for name, src in sets.items():
                    for label, engine, actors, cpus in CONFIGS:
                        res = _one_job(src, tmp / "out", label, engine, actors, cpus)
                        times[name][label].append(res["seconds"])
                        starts[name][label].append(res["startup_s"])
                        worker_ms[name][label] += res.pop("ms")
                        info[name][label] = res
                        took = f"{res['startup_s']:.2f} + {res['seconds']:.2f} s"
                        log(f"[bench] batch {name} {r + 1}: {label}: {took}, {res['images']} images")
        finally:
            if started:
                ray.shutdown()
    for name in sets:
        out["sets"][name] = {}
        for label, *_ in CONFIGS:
            sec = statistics.median(times[name][label])
            n = info[name][label]["images"]
            startup = statistics.median(starts[name][label])
            row = {**info[name][label], "seconds": sec, "startup_s": startup, "images_per_s": n / sec, "runs": times[name][label]}
            row["ms_per_image"] = statistics.median(worker_ms[name][label])  # every image of every round
            out["sets"][name][label] = row
        secs = {label: row["seconds"] for label, row in out["sets"][name].items()}
        out["overhead"][name] = {f"{a} vs {b}": secs[a] / secs[b] - 1 for a, b in PAIRS}
    return out


def batch_engines_markdown(res: dict | None) -> list[str]:
    """The phase's section of the benchmark report.

    Args:
        res: ``measure_batch_engines``' result (or a skipped/error record).

    Returns:
        Markdown lines.
    """
    if not res or "sets" not in res:
        return ["## colorize-rt batch engines", "", f"not run: {(res or {}).get('reason') or (res or {}).get('error')}", ""]
    vnni = "with" if res.get("vnni") else "without"
    lines = [
        "## colorize-rt batch engines (issue 27)",
        "",
        f"CPU: {res['cpu']} ({vnni} AVX-512 VNNI); medians of {res['rounds']} interleaved rounds. Start-up: from the call",
        "to the first image's start (listing, auto's backend pick, the actors' start and model load); work: from there to",
        f"the job's return (every image, write and the manifest). Ray's own `ray.init`, once: {res['ray_startup_s']:.1f} s.",
        "",
        "| set | configuration | pool | start-up s | work s | images/s | worker ms/image (median) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in res["sets"].items():
        for label, r in rows.items():
            cells = [name, label, r["plan"] or "-", f"{r['startup_s']:.2f}", f"{r['seconds']:.2f}", f"{r['images_per_s']:.2f}"]
            lines.append("| " + " | ".join(cells + [f"{r['ms_per_image']:.0f}"]) + " |")
    lines += ["", "Ray's overhead at equal resources (ray work seconds / local work seconds - 1):", ""]
    for name, pairs in res["overhead"].items():
        for pair, v in pairs.items():
            lines.append(f"- {name}: {pair}: {v * 100:+.1f} %")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    """``python -m colorize_rt.bench.batch_engines [OUT_DIR]``: run the phase alone, write JSON and Markdown."""
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0]) if argv else Path(".")
    res = measure_batch_engines(log=lambda m: print(m, file=sys.stderr))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "batch_engines.json").write_text(json.dumps(res, indent=2))
    (out_dir / "batch_engines.md").write_text("\n".join(batch_engines_markdown(res)))
    print("\n".join(batch_engines_markdown(res)))


if __name__ == "__main__":
    main()
