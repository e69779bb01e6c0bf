"""``colorize-bench`` / ``make bench``: run every phase within one time budget and write the reports.

Phases: machine + GEMM peaks -> models (export / INT8) -> backend comparison (interleaved, budgeted)
-> end-to-end folder throughput -> tiled scaling -> JSON + Markdown + PNG under
``benchmarks/results/<machine-tag>/`` (``--quick``: ``build/bench-quick/<machine-tag>/``).
"""

from __future__ import annotations

import datetime as _dt
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from ..core.lazy import MissingDependency
from ..runtime.limits import SIZE, THREADS
from .compare import RunPolicy
from .inputs import REPO_ROOT, default_photo_dir, first_photo, photo_l_maps, sample_rgbs
from .machine import machine_info
from .models import MODELS, prepare_models
from .peak import best_of, measure_peaks, rescale_fractions
from .report import headline, write_reports
from .runners import DEFAULT_BACKENDS, REFERENCE
from .suite import SuiteConfig, run_suite


@dataclass
class BenchConfig:
    mode: str = "full"
    models: tuple[str, ...] = MODELS
    sizes: tuple[int, ...] = (256, 512, 1024)
    batches: tuple[int, ...] = (1, 8)
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    budget_s: float = 780.0  # the whole run: the issue allows 15 minutes including `make setup`
    compare_share: float = 0.65  # of what is left after setup; the rest: end to end and tiled
    max_case_s: float = 75.0
    policy: RunPolicy = field(default_factory=lambda: RunPolicy(warmup=1, min_runs=3, max_runs=30, target_s=10.0))
    gemm_n: int = 2048
    e2e_images: int = 50
    tiled_sizes: tuple[int, ...] = (2000, 4000, 8000)
    fullres_images: int = 6  # full-resolution phase (bench/fullres.py): 12 MP gray JPEGs vs the codec floor
    fullres_size: tuple[int, int] = (4000, 3000)
    fullres_repeats: int = 3
    video_frames: int = 48  # video phase (bench/video.py): an 854x480 gray clip, 3 interleaved rounds; 0 skips it
    batch_engines: bool = True  # colorize-rt batch phase (bench/batch_engines.py): local vs Ray, 50 mixed + six 12 MP
    tile: int = 512
    overlap: int = 64
    threads: int = 0
    photo_dir: str | None = None


def quick_config() -> BenchConfig:
    """Seconds, not minutes: tiny sizes, the mobile model, few runs (what the tests exercise)."""
    return BenchConfig(
        mode="quick",
        models=("mobile",),
        sizes=(64, 128),
        batches=(1, 2),
        budget_s=100.0,
        max_case_s=10.0,
        policy=RunPolicy(warmup=1, min_runs=3, max_runs=5, target_s=0.3),
        gemm_n=512,
        e2e_images=8,
        tiled_sizes=(256, 512),
        fullres_images=0,  # the full-resolution phase needs ~1 min of its own: `python -m benchmarks.fullres`
        video_frames=0,  # the video phase needs ~1 min of its own (tests/test_video_bench.py runs a small one)
        batch_engines=False,  # ~3 min with Ray: `python -m colorize_rt.bench.batch_engines`
        tile=128,
        overlap=16,
    )


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def _quick_photos(tmp: Path, n: int) -> Path:
    """Quick mode without the photo folder: write the sample images as JPEGs (recorded as such)."""
    import cv2

    rgbs, _ = sample_rgbs(None, n)
    for i in range(n):
        cv2.imwrite(str(tmp / f"sample_{i:02d}.jpg"), cv2.cvtColor(rgbs[i % len(rgbs)], cv2.COLOR_RGB2BGR))
    return tmp


def run(cfg: BenchConfig, out_dir: Path | None, cache: Path | None = None, command: str = "") -> tuple[dict, dict]:
    t_start = time.monotonic()
    deadline = t_start + cfg.budget_s
    machine = machine_info()
    out_dir = out_dir or (REPO_ROOT / ("build/bench-quick" if cfg.mode == "quick" else "benchmarks/results") / machine["tag"])
    _log(f"[bench] {cfg.mode} run on {machine['tag']} -> {out_dir}")
    peaks = measure_peaks(cfg.gemm_n, threads=cfg.threads)
    _log(f"[bench] GEMM peak fp32 {peaks['fp32_gflops']:.0f} GFLOP/s, int8 {peaks['int8_gops']:.0f} GOP/s")
    photo_dir = cfg.photo_dir or (str(p) if (p := default_photo_dir()) else None)
    _, inputs = photo_l_maps(cfg.sizes[0], 8, photo_dir)
    models, missing = prepare_models(cfg.models, photo_dir, cache)
    for name, why in missing.items():
        _log(f"[bench] model {name} skipped: {why}")
    left = deadline - time.monotonic()
    suite_cfg = SuiteConfig(
        sizes=cfg.sizes,
        batches=cfg.batches,
        backends=cfg.backends,
        budget_s=left * cfg.compare_share,
        max_case_s=cfg.max_case_s,
        policy=cfg.policy,
        threads=cfg.threads,
        photo_dir=photo_dir,
    )
    cases = run_suite(models, suite_cfg, peaks, log=_log)
    peaks = best_of(peaks, measure_peaks(cfg.gemm_n, threads=cfg.threads))
    rescale_fractions(cases, peaks)

    fullres = _fullres_phase(cfg, deadline)
    batch_engines = _batch_engines_phase(cfg, deadline, photo_dir)
    e2e_model = _e2e_model(models)
    e2e: dict = {"status": "skipped", "reason": "no ONNX model"}
    tiled: dict = {"status": "skipped", "reason": "no ONNX model"}
    with tempfile.TemporaryDirectory(prefix="colorize-bench.") as tmp:
        if e2e_model and cfg.e2e_images:
            folder = Path(photo_dir) if photo_dir else (_quick_photos(Path(tmp), cfg.e2e_images) if cfg.mode == "quick" else None)
            if folder is None:
                e2e = {"status": "skipped", "reason": "no photo folder (pass --photos DIR with >= 50 photos)"}
            else:
                _log(f"[bench] end to end: {cfg.e2e_images} photos, model {e2e_model}")
                try:
                    from .e2e import folder_throughput

                    e2e = folder_throughput(
                        folder,
                        e2e_model,
                        cfg.e2e_images,
                        threads=cfg.threads,
                        timeout=max(deadline - time.monotonic(), 10),
                        compare_rounds=0 if cfg.mode == "quick" else 3,  # per photo vs the network alone: ~1 min
                    )
                except Exception as exc:  # noqa: BLE001 - recorded; the other phases stand
                    e2e = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        if e2e_model and cfg.tiled_sizes:
            from .e2e import tiled_scaling

            tiled = tiled_scaling(
                cfg.tiled_sizes,
                e2e_model,
                deadline - 5,
                cfg.tile,
                cfg.overlap,
                threads=cfg.threads,
                photo=first_photo(photo_dir),
                log=_log,
            )

    video = _video_phase(cfg, deadline, e2e_model, photo_dir)
    hints = _hints_phase(cfg, deadline, photo_dir)
    record = {
        "schema": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "command": command,
        "machine": machine,
        "config": asdict(cfg),
        "inputs": inputs,
        "peaks": peaks,
        "models": [m.describe() for m in models],
        "missing_models": missing,
        "cases": cases,
        "end_to_end": e2e,
        "tiled": tiled,
        "full_resolution": fullres,
        "video": video,
        "hints": hints,
        "batch_engines": batch_engines,
        "headline": headline(cases, size=min(cfg.sizes), batch=min(cfg.batches)),
        "elapsed_s": time.monotonic() - t_start,
    }
    paths = write_reports(record, out_dir)
    _log(f"[bench] done in {record['elapsed_s']:.0f} s: " + ", ".join(str(p) for p in paths.values()))
    return record, paths


def _fullres_phase(cfg: BenchConfig, deadline: float) -> dict:
    """12 MP end to end against the codec floor, folder MP/s, start-up, stages (bench/fullres.py)."""
    if not cfg.fullres_images:
        return {"status": "skipped", "reason": "fullres_images = 0"}
    if deadline - time.monotonic() < 120:
        return {"status": "skipped", "reason": "time budget"}
    _log(f"[bench] full resolution: {cfg.fullres_images} x {cfg.fullres_size[0]}x{cfg.fullres_size[1]} gray JPEGs")
    try:
        from .fullres import measure_fullres

        return measure_fullres(cfg.fullres_images, cfg.fullres_size, cfg.fullres_repeats, log=_log)
    except Exception as exc:  # noqa: BLE001 - recorded; the other phases stand
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def _batch_engines_phase(cfg: BenchConfig, deadline: float, photo_dir) -> dict:
    """``colorize-rt batch``: local against Ray with 1 and 2 actors (bench/batch_engines.py); needs the cluster extra."""
    if not cfg.batch_engines:
        return {"status": "skipped", "reason": "batch_engines = False"}
    if deadline - time.monotonic() < 240:
        return {"status": "skipped", "reason": "time budget"}
    _log("[bench] colorize-rt batch: local vs Ray, 50 mixed photos and six 12 MP photos")
    try:
        from .batch_engines import measure_batch_engines

        return measure_batch_engines(photo_dir, log=_log)
    except MissingDependency as exc:
        return {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - recorded; the other phases stand
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def _hints_phase(cfg: BenchConfig, deadline: float, photo_dir: str | None) -> dict:
    """One hint / palette update of a 1 MP photo against plain colorization (bench/hints.py); ~15 s."""
    if cfg.mode == "quick":
        return {"status": "skipped", "reason": "quick mode"}
    if deadline - time.monotonic() < 30:
        return {"status": "skipped", "reason": "time budget"}
    try:
        from .hints import hint_latency

        return hint_latency("default", threads=cfg.threads, photo_dir=photo_dir, log=_log)
    except Exception as exc:  # noqa: BLE001 - recorded; the other phases stand
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def _video_phase(cfg: BenchConfig, deadline: float, model: str | None, photo_dir: str | None) -> dict:
    """End-to-end video fps beside decode + encode alone and the network alone (bench/video.py)."""
    if not cfg.video_frames or model is None:
        return {"status": "skipped", "reason": "video_frames = 0" if model else "no ONNX model"}
    if deadline - time.monotonic() < 60:
        return {"status": "skipped", "reason": "time budget"}
    _log(f"[bench] video: {cfg.video_frames} frames 854x480, model {model}")
    try:
        from .video import video_throughput

        return video_throughput(model, frames=cfg.video_frames, threads=cfg.threads, photo_dir=photo_dir, log=_log)
    except Exception as exc:  # noqa: BLE001 - recorded; the other phases stand
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def _e2e_model(models) -> str | None:
    """The shipped default when benchmarked (what ``colorize-rt`` runs: ``auto`` measures its INT8 variant and
    OpenVINO's bf16 among the candidates), else the fastest benchmarked ONNX (INT8 first)."""
    for m in models:
        if m.name == "default":
            return "default"
    for m in models:
        if m.int8:
            return str(m.int8)
    return str(models[0].fp32) if models else None


def _ints(text: str, what: str, hi: int, multiple: int = 1) -> tuple[int, ...]:
    """Comma-separated integers in 1..``hi`` (multiples of ``multiple``), at most 16 of them."""
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{what}: comma-separated integers, e.g. 256,512") from None
    if not vals or len(vals) > 16 or any(not 0 < v <= hi or v % multiple for v in vals):
        extra = f", multiples of {multiple}" if multiple > 1 else ""
        raise click.BadParameter(f"{what}: 1 to 16 integers from 1 to {hi}{extra}")
    return vals


@click.command(name="colorize-bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny sizes, mobile model, few runs (< 2 min); writes to build/bench-quick/.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output folder (default benchmarks/results/<machine-tag>).",
)
@click.option("--models", help=f"Comma-separated subset of {','.join(MODELS)}.")
@click.option("--sizes", help="Comma-separated square sizes (multiples of 8), e.g. 256,512,1024.")
@click.option("--batches", help="Comma-separated batch sizes, e.g. 1,8.")
@click.option("--backends", help=f"Comma-separated subset of {','.join(DEFAULT_BACKENDS)}.")
@click.option(
    "--budget-min",
    type=click.FloatRange(0.5, 600),
    help="Time budget of the whole run in minutes (default 13; quick 1.7).",
)
@click.option("--threads", type=THREADS.click_type(), default=0, help="Threads per backend (0 = all cores).")
@click.option(
    "--photos",
    type=click.Path(file_okay=False),
    help="Folder of real photos (inputs, calibration, end "
    "to end); default ../shared/data/colorize-train/val or $COLORIZE_BENCH_PHOTOS.",
)
@click.option("--e2e-images", type=click.IntRange(0, 10_000), help="Photos for the end-to-end run (0 = skip; default 50).")
@click.option("--tiled-sizes", help="Comma-separated tiled-mode image sizes (default 2000,4000,8000; 0 = skip).")
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    help="Where exported bench models are cached (default ~/.cache/colorize-rt/bench or $COLORIZE_BENCH_CACHE).",
)
def cli(quick, out, models, sizes, batches, backends, budget_min, threads, photos, e2e_images, tiled_sizes, cache):
    """Latency, throughput and memory of PyTorch, ONNX Runtime (fp32/INT8), OpenCV dnn and, where present,
    CUDA/TensorRT, on the same models and inputs, interleaved."""
    cfg = quick_config() if quick else BenchConfig()
    if models:
        names = tuple(m.strip() for m in models.split(",") if m.strip())
        bad = [m for m in names if m not in MODELS]
        if bad or not names:
            raise click.BadParameter(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}", param_hint="--models")
        cfg.models = names
    if backends:
        names = tuple(b.strip() for b in backends.split(",") if b.strip())
        bad = [b for b in names if b not in DEFAULT_BACKENDS]
        if bad or not names:
            raise click.BadParameter(
                f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(DEFAULT_BACKENDS)}",
                param_hint="--backends",
            )
        cfg.backends = tuple(dict.fromkeys((REFERENCE, *names)))  # the reference of every ratio always runs
    if sizes:
        cfg.sizes = _ints(sizes, "--sizes", SIZE.range[1], 8)
    if batches:
        cfg.batches = _ints(batches, "--batches", 256)
    if tiled_sizes:
        cfg.tiled_sizes = () if tiled_sizes.strip() == "0" else _ints(tiled_sizes, "--tiled-sizes", 16384)
    if budget_min:
        cfg.budget_s = budget_min * 60
    if e2e_images is not None:
        cfg.e2e_images = e2e_images
    if photos:
        if not Path(photos).is_dir():
            raise click.BadParameter(f"{photos} is not a folder", param_hint="--photos")
        cfg.photo_dir = photos
    cfg.threads = threads
    run(
        cfg,
        Path(out) if out else None,
        Path(cache) if cache else None,
        command=" ".join(["colorize-bench", *sys.argv[1:]]),
    )


def main(argv: list[str] | None = None) -> None:
    import os

    from ..runtime.backends.auto_background import AUTO_MEASURE_ENV

    # the benchmarks time auto's measured choice, never its provisional runner (runtime/backends/auto_background.py)
    os.environ.setdefault(AUTO_MEASURE_ENV, "sync")
    try:
        cli.main(args=argv, prog_name="colorize-bench", standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"colorize-bench: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except MissingDependency as exc:
        click.echo(f"colorize-bench: error: {exc}", err=True)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        click.echo("colorize-bench: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
