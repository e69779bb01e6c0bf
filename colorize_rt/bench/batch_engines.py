"""``colorize-rt batch`` engines (issue 27): images/s of ``--engine local`` against Ray with 1 and 2 actors.

Measured in one run on one machine, rounds interleaved (the order reversed every other round), on two sets:

* **mixed**: 50 small photos of mixed kinds (``archive_photos.make_archive``: 8/16-bit, gray, RGBA, CMYK,
  EXIF-rotated, ...), the archive of the tests;
* **12 MP**: twelve 4000 x 3000 gray JPEGs with sensor-like grain (``fullres.make_photos``).

Configurations at equal resources: local with 1 thread against 1 actor x 1 CPU; local with 2 threads
against 1 actor x 1.9 CPU (2 threads) and against the default pool (one actor per CPU, 2 x 0.95 CPU here).
Each job is split into its start-up (the call to the first image's start: listing, auto's backend pick,
actors' start, model load and warm-up) and its work (the first image's start to the job's return: every
image, every write, the manifest). Ray's own ``ray.init`` and its first job (Ray Data's own actors) are
measured apart, once, before the rounds. Ray's overhead is ``ray work seconds / local work seconds - 1``
per round, and its median over the rounds is reported (with every round's value). Each job's CPU time
(every process of it: the local engine's process; Ray's driver, raylet, GCS, actors and read tasks) is
reported too, as is the load average, since other work on the machine moves the wall times.

Alone: ``python -m colorize_rt.bench.batch_engines OUT_DIR [--rounds R] [--full N] [--sets 12mp,mixed]``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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
PAIRS = (
    ("ray, 1 actor x 1 CPU", "local, 1 thread"),
    ("ray, 1 actor x 1.9 CPU (2 threads)", "local, 2 threads"),
    ("ray, default pool", "local, 2 threads"),
)
SETS = ("mixed", "12mp")


def _quiet(msg: str) -> None:
    pass


# The local engine runs in a fresh process, as `colorize-rt batch --engine local` does: in this process it
# would find the backends warm (OpenVINO compiles each new input shape once per process) where Ray's
# actors, new processes, start cold.
_LOCAL_JOB = """
import json, sys, time
from colorize_rt.runtime.batch.job import run_batch_job
s = run_batch_job(sys.argv[1], sys.argv[2], engine="local", cpus_per_actor=float(sys.argv[3]), progress=False,
                  report=lambda m: None, model=sys.argv[4], backend=sys.argv[5])
print(json.dumps({"seconds": s.seconds, "startup": s.startup_seconds, "done": s.done, "failed": s.failed,
                  "line": s.line(), "ms": [r["ms"] for r in s.rows], "end": time.time(),
                  "first": min(r["started"] for r in s.rows if r["started"])}))
"""


class _JobCpu:
    """CPU seconds of one job, every process of it, over time: this process (Ray's driver) and its
    descendants (the local engine's process; Ray's GCS, raylet, actors and workers), sampled every 0.1 s
    by a thread whose own CPU time is left out. A process that ends keeps its last sampled time."""

    PERIOD = 0.1

    def __enter__(self) -> _JobCpu:
        import psutil  # a dependency of Ray

        self._psutil, self._me = psutil, psutil.Process()
        self._stop = threading.Event()
        self._last: dict = {}  # (pid, create time) -> CPU seconds at the last sample
        self._base = {key: t for key, t in self._descendants().items()}
        self._sampler_cpu = 0.0
        self._own0 = time.process_time()
        self._samples: list[tuple[float, float]] = [(time.time(), 0.0)]
        self._thread = threading.Thread(target=self._run, name="job-cpu", daemon=True)
        self._thread.start()
        return self

    def _descendants(self) -> dict:
        out = {}
        for p in self._me.children(recursive=True):
            try:
                t = p.cpu_times()
                out[(p.pid, p.create_time())] = t.user + t.system
            except self._psutil.Error:
                pass
        return out

    def _sample(self) -> None:
        self._last.update(self._descendants())
        kids = sum(t - self._base.get(key, 0.0) for key, t in self._last.items())
        own = time.process_time() - self._own0 - self._sampler_cpu
        self._samples.append((time.time(), own + kids))

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            self._sample()
            self._sampler_cpu = time.thread_time()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        """CPU seconds from the start to the end of the job."""
        return self._samples[-1][1]

    def between(self, t0: float, t1: float) -> float:
        """CPU seconds between the wall-clock times ``t0`` and ``t1`` (Unix time; interpolated)."""
        ts, cs = [t for t, _ in self._samples], [c for _, c in self._samples]

        def at(t: float) -> float:
            i = max(1, min(len(ts) - 1, bisect.bisect_left(ts, t)))
            (ta, ca), (tb, cb) = (ts[i - 1], cs[i - 1]), (ts[i], cs[i])
            return ca if tb <= ta else ca + (cb - ca) * min(1.0, max(0.0, (t - ta) / (tb - ta)))

        return max(0.0, at(t1) - at(t0))


def _one_job(src: Path, out_root: Path, label: str, engine: str, actors, cpus, pick: tuple[str, str]) -> dict:
    from ..runtime.batch.job import run_batch_job

    dst = out_root / f"{label.replace(' ', '_').replace(',', '')}-{time.monotonic_ns()}"
    with _JobCpu() as cpu:
        if engine == "local":
            cmd = [sys.executable, "-c", _LOCAL_JOB, str(src), str(dst), str(cpus), *pick]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
            wall = time.perf_counter() - t0  # the process's start and exit included (start-up)
            res = json.loads(proc.stdout.splitlines()[-1])
            seconds, startup, done, failed, line = res["seconds"], res["startup"], res["done"], res["failed"], res["line"]
            ms, plan, first, end = res["ms"], "", res["first"], res["end"]
        else:
            t0 = time.perf_counter()
            kw = {
                "actors": actors,
                "cpus_per_actor": cpus,
                "model": pick[0],
                "backend": pick[1],
                "progress": False,
                "report": _quiet,
            }
            s = run_batch_job(str(src), str(dst), engine=engine, **kw)
            wall, end = time.perf_counter() - t0, time.time()
            seconds, startup, done, failed, line = s.seconds, s.startup_seconds, s.done, s.failed, s.line()
            ms, plan, first = [r["ms"] for r in s.rows], s.plan, min(r["started"] for r in s.rows if r["started"])
    if failed or not done:
        raise RuntimeError(f"{label}: {line}")
    startup += wall - seconds
    row = {"seconds": wall - startup, "startup_s": startup, "images": done, "plan": plan, "ms": ms, "cpu_s": cpu.seconds}
    row["runner"] = f"{pick[1]}, {Path(pick[0]).stem}"
    return {**row, "cpu_work_s": cpu.between(first, end)}


def measure_batch_engines(
    photo_dir: str | Path | None = None,
    n_mixed: int = 50,
    n_full: int = 12,
    full_size: tuple[int, int] = (4000, 3000),
    rounds: int = 3,
    ray_cpus: int | None = None,
    sets: tuple[str, ...] = SETS,
    log: Callable[[str], None] = print,
) -> dict:
    """Time every configuration of ``CONFIGS`` on the sets, ``rounds`` times interleaved.

    Args:
        photo_dir: real photos to build the mixed set from (default: the benchmark's photo folder).
        n_mixed: photos in the mixed set.
        n_full: 12 MP photos.
        full_size: their width and height.
        rounds: repetitions of every configuration (medians reported).
        ray_cpus: CPUs of the local Ray (None: all of this machine's).
        sets: which of ``SETS`` to run.
        log: progress lines.

    Returns:
        ``{"ray_startup_s", "ray_first_job_s", "sets": {name: {label: {...}}}, "overhead": {...}, "cpu": ...,
        "load": [...]}``.
    """
    from ..core.cpu import cpu_flags, cpu_model
    from ..runtime.batch.job import resolve_auto
    from ..runtime.batch.ray_engine import import_ray
    from ..runtime.batch.worker import actor_threads
    from .archive_photos import make_archive
    from .fullres import make_photos
    from .inputs import default_photo_dir

    unknown = [name for name in sets if name not in SETS]
    if unknown or not sets:
        raise ValueError(f"unknown set {', '.join(unknown) or '(none)'}: use {', '.join(SETS)}")
    ray = import_ray()
    photo_dir = photo_dir or default_photo_dir()
    if photo_dir is None and "mixed" in sets:
        raise RuntimeError("no photo folder: pass --photos DIR")
    out: dict = {"cpu": cpu_model(), "vnni": "avx512_vnni" in cpu_flags(), "cores": os.cpu_count(), "rounds": rounds}
    out.update({"sets": {}, "overhead": {}, "overhead_rounds": {}, "cpu_overhead": {}, "load": [os.getloadavg()[0]]})
    with tempfile.TemporaryDirectory(prefix="colorize-batch-bench.") as tmp:
        tmp = Path(tmp)
        paths = {"mixed": tmp / "mixed", "12mp": tmp / "12mp"}
        if "mixed" in sets:
            make_archive(paths["mixed"], photo_dir, n=n_mixed, side=128)
        if "12mp" in sets:
            make_photos(paths["12mp"], n_full, full_size)
        make_photos(tmp / "first", 2, (400, 300))
        started = not ray.is_initialized()
        t0 = time.perf_counter()
        if started:
            ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False)
        out["ray_startup_s"] = time.perf_counter() - t0
        try:
            # Ray Data's first job in a session starts its own helper actors: paid once per session, not per job
            # auto's pick, once per thread count, so both engines of a pair run the same runner in every round
            picks = {t: resolve_auto("default", "auto", float(t), "fit", 256, 512, _quiet) for t in (1, 2)}
            first = _one_job(tmp / "first", tmp / "out", "first", "ray", None, None, picks[1])
            out["ray_first_job_s"] = first["startup_s"] + first["seconds"]
            labels = [label for label, *_ in CONFIGS]
            times = {name: {label: [] for label in labels} for name in sets}
            worker_ms = {name: {label: [] for label in labels} for name in sets}
            starts = {name: {label: [] for label in labels} for name in sets}
            cpu_s = {name: {label: [] for label in labels} for name in sets}
            cpu_work = {name: {label: [] for label in labels} for name in sets}
            info: dict = {name: {} for name in sets}
            for r in range(rounds):
                order = CONFIGS if r % 2 == 0 else CONFIGS[::-1]
                for name in sets:
                    for label, engine, actors, cpus in order:
                        res = _one_job(paths[name], tmp / "out", label, engine, actors, cpus, picks[actor_threads(cpus or 1.0)])
                        times[name][label].append(res["seconds"])
                        starts[name][label].append(res["startup_s"])
                        cpu_s[name][label].append(res["cpu_s"])
                        cpu_work[name][label].append(res["cpu_work_s"])
                        worker_ms[name][label] += res.pop("ms")
                        info[name][label] = res
                        took = f"{res['startup_s']:.2f} + {res['seconds']:.2f} s"
                        took += f", CPU {res['cpu_s']:.1f} s ({res['cpu_work_s']:.1f} s in the work)"
                        log(f"[bench] batch {name} {r + 1}: {label}: {took}, {res['images']} images")
                out["load"].append(os.getloadavg()[0])
        finally:
            if started:
                ray.shutdown()
    for name in sets:
        out["sets"][name] = {}
        for label in labels:
            sec = statistics.median(times[name][label])
            n = info[name][label]["images"]
            row = {**info[name][label], "seconds": sec, "startup_s": statistics.median(starts[name][label])}
            row.update(images_per_s=n / sec, runs=times[name][label], cpu_s=statistics.median(cpu_s[name][label]))
            row["cpu_work_ms_per_image"] = 1000 * statistics.median(cpu_work[name][label]) / n
            row["ms_per_image"] = statistics.median(worker_ms[name][label])  # every image of every round
            out["sets"][name][label] = row
        per_round = {f"{a} vs {b}": [x / y - 1 for x, y in zip(times[name][a], times[name][b], strict=True)] for a, b in PAIRS}
        out["overhead_rounds"][name] = per_round
        out["overhead"][name] = {pair: statistics.median(v) for pair, v in per_round.items()}
        cpu_pairs = [(a, b, zip(cpu_work[name][a], cpu_work[name][b], strict=True)) for a, b in PAIRS]
        out["cpu_overhead"][name] = {f"{a} vs {b}": statistics.median(x / y - 1 for x, y in xy) for a, b, xy in cpu_pairs}
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
    load = res.get("load") or []
    load_line = f" Load average (1 min) before and after each round: {', '.join(f'{x:.1f}' for x in load)}." if load else ""
    first = f"; Ray Data's first job in the session: {res['ray_first_job_s']:.1f} s" if "ray_first_job_s" in res else ""
    lines = [
        "## colorize-rt batch engines (issue 27)",
        "",
        f"CPU: {res['cpu']} ({vnni} AVX-512 VNNI), {res.get('cores', '?')} cores; medians of {res['rounds']} interleaved rounds.",
        "Start-up: from the call to the first image's start (listing, the actors' start, model load",
        "and warm-up); work: from there to the job's return (every image, write and the manifest). Once, apart: Ray's",
        f"`ray.init` {res['ray_startup_s']:.1f} s{first}.{load_line}",
        "",
        "| set | configuration | pool | runner (auto's pick) | start-up s | work s | images/s | worker ms/image "
        "| CPU ms/image (work) | CPU s (job) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in res["sets"].items():
        for label, r in rows.items():
            cells = [name, label, r["plan"] or "-", r.get("runner", "-")]
            cells += [f"{r['startup_s']:.2f}", f"{r['seconds']:.2f}", f"{r['images_per_s']:.2f}"]
            cells.append(f"{r['ms_per_image']:.0f}")
            cells += [f"{r['cpu_work_ms_per_image']:.0f}", f"{r['cpu_s']:.1f}"] if "cpu_s" in r else ["-", "-"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Worker ms/image: the median per-image time inside the worker (decode to write). CPU: every process of the job",
        "(the local engine's process; Ray's driver, GCS, raylet, actors and read tasks), sampled every 0.1 s; \"work\"",
        'is its share in the work window, per image; "job" the whole job, start-up included.',
    ]
    head = "Ray's overhead at equal resources (ray work seconds / local work seconds - 1; the median of the per-round"
    lines += ["", head + " ratios, then each round's), and in CPU time (ray / local CPU in the work windows - 1):", ""]
    for name, pairs in res["overhead"].items():
        for pair, v in pairs.items():
            each = res.get("overhead_rounds", {}).get(name, {}).get(pair)
            rounds = f" (rounds: {', '.join(f'{x * 100:+.1f}' for x in each)})" if each else ""
            cpu = res.get("cpu_overhead", {}).get(name, {}).get(pair)
            cpu_text = f"; CPU {cpu * 100:+.1f} %" if cpu is not None else ""
            lines.append(f"- {name}: {pair}: {v * 100:+.1f} %{rounds}{cpu_text}")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    """``python -m colorize_rt.bench.batch_engines OUT_DIR [--rounds R] [--full N] [--sets 12mp,mixed]``: the phase
    alone; writes ``batch_engines.json`` and ``batch_engines.md`` in OUT_DIR and prints the Markdown."""
    parser = argparse.ArgumentParser(prog="python -m colorize_rt.bench.batch_engines", description=main.__doc__)
    parser.add_argument("out_dir", nargs="?", default=".", help="where the JSON and Markdown go (default: .)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, 1..20 (default 3)")
    parser.add_argument("--full", type=int, default=12, help="12 MP photos, 1..100 (default 12)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)} (default: both)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sets = tuple(x.strip() for x in args.sets.split(",") if x.strip())
    if not 1 <= args.rounds <= 20 or not 1 <= args.full <= 100 or not sets or set(sets) - set(SETS):
        parser.error(f"--rounds 1..20, --full 1..100, --sets of {', '.join(SETS)}")
    res = measure_batch_engines(n_full=args.full, rounds=args.rounds, sets=sets, log=lambda m: print(m, file=sys.stderr))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "batch_engines.json").write_text(json.dumps(res, indent=2))
    (out_dir / "batch_engines.md").write_text("\n".join(batch_engines_markdown(res)))
    print("\n".join(batch_engines_markdown(res)))


if __name__ == "__main__":
    main()
