"""``colorize-rt batch SRC DST``: a thin click layer over ``job.run_batch_job``.

Exit codes: 0 the job ran (failed images are rows of the manifest, counted in the summary line), 2 a usage
error (one line, before any work), 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from ...core.files import IMAGE_EXTS
from ...core.lazy import MissingDependency
from ..backends.registry import BACKENDS, BackendError
from ..backends.shipped_models import ModelError
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
    ParameterError,
)
from ..pipeline.images import DEFAULT_MAX_PIXELS
from .job import ENGINES, run_batch_job
from .paths import BatchPathError

BATCH_PROG = "colorize-rt batch"


@click.command(name=BATCH_PROG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src")
@click.argument("dst")
@click.option("--engine", type=click.Choice(ENGINES), default="ray", show_default=True, help="ray: Ray Data; local: here.")
@click.option("--address", help="Ray cluster to join (e.g. ray://head:10001, auto); default: an embedded local Ray.")
@click.option("--actors", type=BATCH_ACTORS.click_type(), help="Ray actors (default: one per CPU of the cluster).")
@click.option("--cpus-per-actor", type=CPUS_PER_ACTOR.click_type(), help="CPUs per actor = ONNX Runtime threads.")
@click.option("--gpus-per-actor", type=GPUS_PER_ACTOR.click_type(), default=0.0, show_default=True)
@click.option("--batch-size", type=BATCH_IMAGES.click_type(), help="Images per batch handed to an actor (default 1..16).")
@click.option("--dry-run", is_flag=True, help="Print what would be done and write nothing.")
@click.option("--model", default="default", show_default=True, help="default | default-int8 | default-l2 | PATH.onnx")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--temperature", "-T", type=TEMPERATURE.click_type(), help="Annealed-mean temperature (default: the model's).")
@click.option("--mode", type=click.Choice(("fit", "tiled")), default="fit", show_default=True)
@click.option("--size", type=click.IntRange(*SIZE.range), default=256, show_default=True, help="fit mode: network input size.")
@click.option("--tile", type=click.IntRange(*TILE.range), default=512, show_default=True, help="tiled mode: tile size.")
@click.option("--overlap", type=click.IntRange(*OVERLAP.range), default=64, show_default=True, help="tiled mode: overlap.")
@click.option("--scale", type=SCALE.click_type(), default=1.0, show_default=True, help="tiled mode: scale.")
@click.option("--format", "fmt", type=click.Choice(sorted(e.lstrip(".") for e in IMAGE_EXTS)), help="Output format.")
@click.option("--quality", type=click.IntRange(*QUALITY.range), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--max-pixels", type=click.IntRange(*MAX_PIXELS.range), default=DEFAULT_MAX_PIXELS, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def cli(src, dst, engine, address, actors, cpus_per_actor, gpus_per_actor, batch_size, dry_run, model, backend, temperature,
        mode, size, tile, overlap, scale, fmt, quality, max_pixels, quiet):  # fmt: skip
    """Colourise an archive: every image under SRC into DST (sub-folders mirrored; fsspec URLs welcome)."""
    if mode == "tiled" and overlap >= tile:
        raise click.UsageError(f"--overlap ({overlap}) must be smaller than --tile ({tile})")
    if address and engine != "ray":
        raise click.UsageError("--address needs --engine ray")
    try:
        summary = run_batch_job(
            src, dst, engine=engine, address=address, actors=actors, cpus_per_actor=cpus_per_actor,
            gpus_per_actor=gpus_per_actor, batch_size=batch_size, dry_run=dry_run, model=model, backend=backend,
            temperature=temperature, mode=mode, size=size, tile=tile, overlap=overlap, scale=scale, fmt=fmt,
            quality=quality, max_pixels=max_pixels, progress=not quiet and sys.stderr.isatty() or engine == "ray" and not quiet,
        )  # fmt: skip
    except (BatchPathError, ParameterError, ModelError, BackendError, MissingDependency, ValueError) as exc:
        raise click.UsageError(" ".join(str(exc).split())) from None
    if not dry_run:
        click.echo(summary.line(), err=True)
        if summary.failed:
            click.echo(f"{BATCH_PROG}: {summary.failed} failed; their errors are in {summary.manifest}", err=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    """Run ``colorize-rt batch`` and exit with its code.

    Args:
        argv: the arguments after ``batch`` (default ``sys.argv[1:]``).
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        rv = cli.main(args=argv, prog_name=BATCH_PROG, standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"{BATCH_PROG}: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{BATCH_PROG}: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
