"""``colorize-calibrate model.onnx --data DIR -o model.int8.onnx``: INT8 Q/DQ model behind an accuracy gate.

The gate covers both x86 INT8 kernel paths: weights are 7-bit, so CPUs without VNNI (VPMADDUBSW) compute the
same integers as VNNI/AMX ones (``core.int8sim``); the model carries a known-answer probe it must pass here.

Exit codes: 0 written, 1 accuracy gate or a check failed (nothing written), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from ..core.lazy import MissingDependency
from .quantize import CALIBRATION_METHODS, DEFAULT_MAX_DROP, EVAL_EVERY, INT8_TARGETS, KEEP_FP32, GateFailed, calibrate


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
@click.option("--method", type=click.Choice(CALIBRATION_METHODS), default="entropy", show_default=True)
@click.option(
    "--max-drop",
    type=click.FloatRange(-100, 100),
    default=DEFAULT_MAX_DROP,
    show_default=True,
    help="Largest allowed drop of rebalanced AuC (points) from fp32 to INT8 (negative: INT8 must gain that much).",
)
@click.option("--num-images", type=click.IntRange(1, 100_000), default=256, show_default=True, help="Calibration images.")
@click.option("--eval-images", type=click.IntRange(1, 100_000), default=200, show_default=True, help="Gate images.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Calibration cache folder (default ~/.cache/colorize-rt/calibration).",
)
@click.option(
    "--keep-fp32",
    multiple=True,
    metavar="PREFIX",
    help="Node-name prefix of layers to leave in fp32 (repeatable; default: "
    + ", ".join(KEEP_FP32)
    + "; 'none': quantize every layer).",
)
@click.option(
    "--target",
    type=click.Choice(INT8_TARGETS),
    default="tensorrt",
    show_default=True,
    help="tensorrt: symmetric INT8 activations (TensorRT and CPU); cpu: uint8 activations, more accurate on "
    "ONNX Runtime CPU, not for TensorRT.",
)
@click.option("--progress/--no-progress", default=True)
def main(model, data_dir, output, eval_dir, method, max_drop, num_images, eval_images, cache_dir, keep_fp32, target, progress):
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
            keep_fp32=None if not keep_fp32 else tuple(p for p in keep_fp32 if p != "none"),
            target=target,
        )
    except GateFailed as exc:
        click.echo(
            f"error: {exc}; nothing written (try --method percentile/minmax, more images, or --max-drop)",
            err=True,
        )
        sys.exit(1)
    except RuntimeError as exc:  # not TensorRT-compatible, would saturate without VNNI, fails its probe
        click.echo(f"error: {exc}; nothing written", err=True)
        sys.exit(1)
    except (OSError, ValueError, MissingDependency) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("error: interrupted; nothing written", err=True)
        sys.exit(130)
    cache = "reused" if report["cache_hit"] else "written"
    click.echo(report["gate"].message())
    click.echo(
        f"wrote {report['output']} ({report['calibration_images']} calibration images, method {method}, "
        f"cache {cache}: {report['cache_path']}; "
        f"ONNX Runtime CPU runs {report['qlinear_ops']} integer QLinear ops)"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
