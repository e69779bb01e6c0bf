"""``colorize-calibrate model.onnx --data DIR -o model.int8.onnx``: INT8 Q/DQ model behind an accuracy gate.

Exit codes: 0 written, 1 accuracy gate failed (nothing written), 2 usage error.
"""

from __future__ import annotations

import sys

import click

from ..core.lazy import MissingDependency
from .quantize import DEFAULT_MAX_DROP, EVAL_EVERY, METHODS, GateFailed, calibrate


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="Calibration image folder.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="INT8 ONNX to write.")
@click.option(
    "--eval",
    "eval_dir",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Held-out folder for the accuracy gate (default: every {EVAL_EVERY}th image of --data, not calibrated on).",
)
@click.option("--method", type=click.Choice(METHODS), default="entropy", show_default=True)
@click.option(
    "--max-drop",
    type=float,
    default=DEFAULT_MAX_DROP,
    show_default=True,
    help="Largest allowed drop of rebalanced AuC (points) from fp32 to INT8.",
)
@click.option("--num-images", type=click.IntRange(1), default=256, show_default=True, help="Calibration images.")
@click.option("--eval-images", type=click.IntRange(1), default=200, show_default=True, help="Gate images.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Calibration cache folder (default ~/.cache/colorize-rt/calibration).",
)
@click.option("--progress/--no-progress", default=True)
def main(model, data_dir, output, eval_dir, method, max_drop, num_images, eval_images, cache_dir, progress):
    """Quantize MODEL (an fp32 colorize-rt ONNX export) to INT8 with calibration on --data."""
    try:
        report = calibrate(
            model,
            output,
            data_dir,
            eval_dir=eval_dir,
            method=method,
            max_drop=max_drop,
            num_images=num_images,
            eval_images=eval_images,
            cache_dir=cache_dir,
            progress=progress,
        )
    except GateFailed as exc:
        click.echo(
            f"error: {exc}; nothing written (try --method percentile/minmax, more images, or --max-drop)",
            err=True,
        )
        sys.exit(1)
    except (FileNotFoundError, ValueError, MissingDependency) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    cache = "reused" if report["cache_hit"] else "written"
    click.echo(report["gate"].message())
    click.echo(
        f"wrote {report['output']} ({report['calibration_images']} calibration images, method {method}, "
        f"cache {cache}: {report['cache_path']}; "
        f"ONNX Runtime CPU runs {report['qlinear_ops']} integer QLinear ops)"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
