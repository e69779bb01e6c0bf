"""``colorize-prior DIR -o prior.npy``: the empirical ab prior of a folder of images (313 bins)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import numpy as np

from ..core.atomic import atomic_path, check_writable
from ..core.files import IMAGE_EXTS, list_images
from ..core.prior import prior_warning, rebalance_weights

_PROG = "colorize-prior"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="where to save the prior (.npy, 313 float64 values summing to 1)",
)
@click.option("--limit", default=0, type=click.IntRange(0, 10**7), help="use at most this many images (0 = all)")
def cli(folder: Path, output: Path, limit: int) -> None:
    """Compute the prior over the 313 ab bins (images at shorter side 64, nearest bin per pixel)."""
    from .train import compute_prior

    if output.suffix.lower() in IMAGE_EXTS:  # an image among the inputs, or a typo: the prior is a .npy array
        raise click.UsageError(f"-o {output} is an image file name; the prior is a .npy array: pass e.g. -o prior.npy")
    files = list_images(folder, limit or None)
    if not files:
        raise click.UsageError(f"no images under {folder}")
    try:
        check_writable(output.parent)  # before the compute
    except OSError as exc:
        raise click.UsageError(f"-o {output}: {exc.strerror}") from None
    try:
        p = compute_prior(files)
    except ValueError as exc:  # every file unreadable
        raise click.UsageError(f"{folder}: {exc}") from None
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, p)
    if warning := prior_warning(p):
        click.echo(f"{_PROG}: warning: {warning}", err=True)
    w = rebalance_weights(p)
    click.echo(
        f"prior of {len(files)} images -> {output}; {int((p == 0).sum())} empty bins; "
        f"rebalancing weights {w.min():.2f}..{w.max():.2f}"
    )


def main(argv=None) -> int:
    """Run the command: a usage mistake is one line on stderr and exit 2 (click's own format takes three)."""
    logging.basicConfig(level=logging.WARNING, format=f"{_PROG}: %(message)s")  # compute_prior's warnings
    try:
        rv = cli.main(args=argv, prog_name=_PROG, standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"{_PROG}: error: {exc.format_message()}", err=True)
        return 2
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{_PROG}: interrupted; nothing written", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
