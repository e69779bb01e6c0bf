"""``colorize-prior DIR -o prior.npy``: the empirical ab prior of a folder of images (313 bins)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from ..core.atomic import atomic_path
from ..core.files import list_images
from ..core.prior import rebalance_weights


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

    files = list_images(folder, limit or None)
    if not files:
        raise click.UsageError(f"no images under {folder}")
    p = compute_prior(files)
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, p)
    w = rebalance_weights(p)
    click.echo(
        f"prior of {len(files)} images -> {output}; {int((p == 0).sum())} empty bins; "
        f"rebalancing weights {w.min():.2f}..{w.max():.2f}"
    )


def main(argv=None) -> int:
    return cli.main(args=argv, prog_name="colorize-prior", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
