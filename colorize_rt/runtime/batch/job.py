"""``run_batch_job``: one archive job from SRC to DST, on this machine (``local``) or on Ray (``ray``).

The steps: check SRC and DST (one line each, before any work); list SRC once; leave out the sources whose
output exists in DST; colourise the rest (both engines run ``worker.ColorizeWorker``, so they write the
same bytes); write the manifest under ``DST/_manifest/``; return the counts for the summary line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...core.files import IMAGE_EXTS
from ..backends.shipped_models import resolve_model
from ..limits import (
    BATCH_ACTORS,
    BATCH_IMAGES,
    CPUS_PER_ACTOR,
    GPUS_PER_ACTOR,
    MAX_PIXELS,
    OVERLAP,
    QUALITY,
    SCALE,
    SIZE,
    TEMPERATURE,
    TILE,
)
from ..pipeline.images import DEFAULT_MAX_PIXELS
from .manifest import new_run_id, one_row_per_source, write_manifest
from .paths import (
    BatchPathError,
    Place,
    check_places,
    list_existing,
    list_source_images,
    output_name,
    probe_destination,
    sweep_temps,
)
from .worker import BatchSettings, ColorizeWorker, actor_threads, manifest_row

ENGINES = ("local", "ray")


@dataclass
class BatchJobSummary:
    """What a job did: counts, wall time, its start-up apart, the manifest's path and rows.

    ``startup_seconds`` run from the call to the moment the first image starts (listing, ``ray.init``, the
    actors' start and model load); ``ray_init_seconds`` is the ``ray.init`` part of it.
    """

    run_id: str
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    ray_init_seconds: float = 0.0
    manifest: str | None = None
    plan: str = ""
    rows: list[dict] = field(default_factory=list)

    @property
    def work_seconds(self) -> float:
        """From the first image's start to the job's end (the manifest written)."""
        return max(0.0, self.seconds - self.startup_seconds)

    @property
    def images_per_second(self) -> float:
        return self.done / self.work_seconds if self.done and self.work_seconds > 0 else 0.0

    def line(self) -> str:
        """The summary line printed at the end of a job."""
        startup = f" after a start-up of {self.startup_seconds:.1f} s" if self.startup_seconds else ""
        return (
            f"colorize-rt batch: {self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s "
            f"({self.images_per_second:.2f} images/s{startup})"
        )


def _check_options(mode: str, engine: str, size, tile, overlap, scale, temperature, quality, max_pixels, sizing: dict) -> None:
    """Every parameter inside its bound (``runtime.limits``); raises ``ParameterError``/``ValueError`` (one line)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine '{engine}': use one of {', '.join(ENGINES)}")
    if mode not in ("fit", "tiled"):
        raise ValueError(f"unknown mode '{mode}': use fit or tiled")
    SIZE.check(size), TILE.check(tile), OVERLAP.check(overlap), SCALE.check(scale), QUALITY.check(quality)
    MAX_PIXELS.check(max_pixels)
    if temperature is not None:
        TEMPERATURE.check(temperature)
    if mode == "tiled" and overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    for bound, key in ((BATCH_ACTORS, "actors"), (CPUS_PER_ACTOR, "cpus_per_actor"), (BATCH_IMAGES, "batch_size")):
        if sizing.get(key) is not None:
            bound.check(sizing[key])
    GPUS_PER_ACTOR.check(sizing.get("gpus_per_actor") or 0)


def plan_sources(src: Place, dst: Place, fmt: str | None) -> tuple[list[str], list[str]]:
    """List SRC once and DST once: (sources to do, sources whose output exists).

    Args:
        src: the input folder.
        dst: the output folder.
        fmt: output format (None: each input's).

    Returns:
        Two lists of paths relative to SRC.

    Raises:
        BatchPathError: two sources would write the same output (e.g. ``a.png`` and ``a.jpg`` with ``--format``).
    """
    rels = list_source_images(src)
    if not rels:
        raise BatchPathError(f"SRC {src.url}: no images in it (looked for {', '.join(sorted(IMAGE_EXTS))})")
    existing = list_existing(dst)
    todo, skipped, seen = [], [], {}
    for rel in rels:
        out = output_name(rel, fmt)
        if out in seen:
            raise BatchPathError(f"{seen[out]} and {rel} would both be written to {out}: use separate runs or keep the formats")
        seen[out] = rel
        (skipped if out in existing else todo).append(rel)
    return todo, skipped


def resolve_auto(model: str, backend: str, cpus: float | None, mode: str, size: int, tile: int, say) -> tuple[str, str]:
    """The model file and backend ``auto`` picks on this machine, picked once in the driver so every worker
    of a one-machine job (the local engine, every actor of an embedded Ray) runs the same runner and writes
    the same bytes (``auto`` may measure, and a measurement could differ from one process to the next).

    Args:
        model: the model asked for.
        backend: ``auto``.
        cpus: the workers' CPUs (their threads).
        mode: ``fit`` or ``tiled``.
        size: fit mode's size.
        tile: tiled mode's tile.
        say: where the backends' notes go.

    Returns:
        ``(model path, backend)`` to open explicitly.
    """
    from ..api import Colorizer

    max_side = max(size, tile) if mode == "tiled" else size
    threads = actor_threads(cpus) if cpus else 0
    with Colorizer(model, backend, "classification", threads, max_side=max_side, warn=say, purpose="throughput") as c:
        return str(c.model_path), c.backend


def _local_rows(settings: BatchSettings, rels: list[str], worker_class: type, cpus: float | None, progress: bool) -> list[dict]:
    settings.threads = actor_threads(cpus) if cpus else 0
    worker = worker_class(settings)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(rels), unit="img", desc="colorize", dynamic_ncols=True)
    rows = []
    fs = settings.src.fs
    try:
        for rel in rels:
            try:
                data = fs.cat_file(settings.src.join(rel))
            except Exception as exc:  # noqa: BLE001 - an unreadable source is a row
                rows.append(manifest_row(settings, rel, "failed", f"cannot read ({' '.join(str(exc).split())[:200]})"))
            else:
                rows.append(worker.process(rel, data))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        worker.colorizer.close()
    return rows


def run_batch_job(
    src: str,
    dst: str,
    *,
    engine: str = "ray",
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float = 0.0,
    batch_size: int | None = None,
    dry_run: bool = False,
    model: str = "default",
    backend: str = "auto",
    temperature: float | None = None,
    mode: str = "fit",
    size: int = 256,
    tile: int = 512,
    overlap: int = 64,
    scale: float = 1.0,
    fmt: str | None = None,
    quality: int = 95,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    storage_options: dict | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
    worker_class: type = ColorizeWorker,
    worker_options: dict | None = None,
    ray_cpus: int | None = None,
) -> BatchJobSummary:
    """Colourise every image under SRC into DST (sub-folders mirrored), leaving out existing outputs.

    Args:
        src: input folder or fsspec URL (``file://``, ``s3://``, ``gs://``).
        dst: output folder or URL; the manifest goes under ``DST/_manifest/``.
        engine: ``local`` (this process) or ``ray`` (Ray Data; an embedded local Ray without ``address``).
        address: the Ray cluster to join (``--address``).
        actors: Ray actors (None: as many as fit next to the reads).
        cpus_per_actor: CPUs per actor, also ONNX Runtime's threads (None: 1 on Ray, all cores locally).
        gpus_per_actor: GPUs per actor (GPU actors cache TensorRT / CUDA engines on local disk).
        batch_size: images per batch handed to an actor (None: 1..16, several batches per actor).
        dry_run: print the counts and write nothing.
        model: ``default`` | ``default-int8`` | ``default-l2`` | a model path (on every node).
        backend: ``auto`` | ``cpu`` | ``cuda`` | ``tensorrt`` | ``ort-trt``.
        temperature: annealed-mean temperature (None: the model's).
        mode: ``fit`` or ``tiled``.
        size: fit mode's network input size.
        tile: tiled mode's tile size.
        overlap: tiled mode's tile overlap.
        scale: tiled mode's scale.
        fmt: output format (None: each input's).
        quality: JPEG / WebP quality.
        max_pixels: decompression-bomb guard (0: no limit).
        storage_options: fsspec options for SRC and DST (e.g. an S3 endpoint).
        progress: progress bars (Ray's own on Ray).
        report: where one-line notes go (default: stderr).
        worker_class: the per-image worker (a ``ColorizeWorker``).
        worker_options: extra settings for ``worker_class`` (``BatchSettings.extra``).
        ray_cpus: CPUs of a new embedded local Ray (None: all of this machine's).

    Returns:
        The ``BatchJobSummary``.

    Raises:
        BatchPathError: SRC/DST unusable, before any work.
        ParameterError, ValueError: an option outside its bounds.
        ModelError: the model cannot be found.
        MissingDependency: ``engine="ray"`` without Ray, or a URL without its fsspec package.
    """
    say = report or (lambda msg: print(msg, file=sys.stderr))
    sizing = {"actors": actors, "cpus_per_actor": cpus_per_actor, "gpus_per_actor": gpus_per_actor, "batch_size": batch_size}
    _check_options(mode, engine, size, tile, overlap, scale, temperature, quality, max_pixels, sizing)
    t0, wall0 = time.perf_counter(), time.time()
    src_place, dst_place = Place(src, dict(storage_options or {})), Place(dst, dict(storage_options or {}))
    check_places(src_place, dst_place)
    todo, skipped = plan_sources(src_place, dst_place, fmt)
    if not dry_run:
        probe_destination(dst_place)
    summary = BatchJobSummary(run_id=new_run_id(), total=len(todo) + len(skipped), skipped=len(skipped))
    if dry_run:
        say(f"colorize-rt batch: dry run: {summary.total} images in {src}, {len(skipped)} already in {dst}, {len(todo)} to do")
        return summary
    if engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # a missing Ray is one line before any work
    resolve_model(model)  # a wrong model name is one line before any work
    if backend == "auto" and not address and not gpus_per_actor:
        model, backend = resolve_auto(model, backend, cpus_per_actor or 1.0, mode, size, tile, say)  # one key for both engines
    settings = BatchSettings(src=src_place, dst=dst_place, run_id=summary.run_id, model=model, backend=backend,
                             temperature=temperature, mode=mode, size=size, tile=tile, overlap=overlap, scale=scale,
                             fmt=fmt, quality=quality, max_pixels=max_pixels, extra=dict(worker_options or {}))  # fmt: skip
    rows = [manifest_row(settings, rel, "skipped") for rel in skipped]
    if todo and engine == "local":
        rows += _local_rows(settings, todo, worker_class, cpus_per_actor, progress)
    elif todo:
        rows += _ray_job(settings, todo, summary, sizing, address, ray_cpus, worker_class, progress, say)
    summary.rows = one_row_per_source(rows)
    starts = [r["started"] for r in summary.rows if r.get("started")]
    if starts:
        summary.startup_seconds = max(0.0, min(starts) - wall0)
    summary.done = sum(r["status"] == "done" for r in summary.rows)
    summary.failed = sum(r["status"] == "failed" for r in summary.rows)
    summary.manifest = write_manifest(dst_place, summary.run_id, summary.rows)
    sweep_temps(dst_place, [output_name(rel, fmt) for rel in todo])
    summary.seconds = time.perf_counter() - t0
    return summary


def _ray_job(settings, todo, summary, sizing, address, ray_cpus, worker_class, progress, say) -> list[dict]:
    from .ray_engine import ensure_ray, import_ray, node_cpus, plan_actors, ray_rows

    ray = import_ray()
    t0 = time.perf_counter()
    started = ensure_ray(address, ray_cpus)
    summary.ray_init_seconds = time.perf_counter() - t0
    try:
        per_node = node_cpus()
        cpus = sum(per_node)
        plan = plan_actors(per_node, len(todo), **sizing)
        summary.plan = plan.line()
        if progress:
            say(f"colorize-rt batch: {len(todo)} images on Ray ({cpus:g} CPUs): {summary.plan}")
        return ray_rows(settings, todo, plan, worker_class=worker_class, progress=progress)
    finally:
        if started:
            ray.shutdown()
