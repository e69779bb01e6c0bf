"""``colorize-eval``: the paper's metrics for checkpoints and exported ONNX models, side by side with
the gray baseline.

    colorize-eval --model run/best.pt --model model.int8.onnx --data ../shared/data/colorize-train/val --json out.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from ..core.atomic import atomic_write_text
from ..core.constants import DEFAULT_T
from ..core.netinput import pad_to_multiple
from ..evaluation import Predictor, evaluate, format_table, list_images, onnx_predictor


def torch_predictor(net, temperature: float = DEFAULT_T, device=None) -> Predictor:
    """A predictor running a torch network (through the same fused decode as the export) on one L map."""
    import torch

    from ..models.decode import Colorizer

    graph = Colorizer(net).eval().to(device or "cpu")

    def predict(L: np.ndarray) -> np.ndarray:
        h, w = L.shape
        x = torch.from_numpy(pad_to_multiple(L))[None, None].to(device or "cpu")
        with torch.no_grad():
            ab = graph(x, temperature)
        return ab[0, :, :h, :w].float().cpu().numpy()

    return predict


def predictor_for(path: Path, temperature: float) -> Predictor:
    """Checkpoint (.pt/.pth) or exported model (.onnx) -> predictor."""
    if path.suffix == ".onnx":
        return onnx_predictor(path, temperature)
    from .checkpoint import model_from_checkpoint

    net, _ = model_from_checkpoint(path)
    return torch_predictor(net, temperature)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="checkpoint (.pt) or ONNX model; repeat to compare several",
)
@click.option(
    "--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="folder of colour images"
)
@click.option("--temperature", default=DEFAULT_T, show_default=True, type=click.FloatRange(min=1e-3))
@click.option("--limit", default=0, help="evaluate at most this many images (0 = all)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="write results as JSON")
def cli(models, data, temperature, limit, json_out):
    """Score models with the paper's metrics (raw / rebalanced AuC, PSNR) against the gray baseline."""
    files = list_images(data, limit or None)
    if not files:
        raise click.UsageError(f"no images under {data}")
    predictors = {}
    for path in models:
        name = path.stem if path.stem not in predictors else str(path)
        try:
            predictors[name] = predictor_for(path, temperature)
        except (ValueError, RuntimeError) as exc:
            raise click.ClickException(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
    result = evaluate(files, predictors)
    result["temperature"] = temperature
    result["data"] = str(data)
    click.echo(format_table(result))
    if json_out:
        atomic_write_text(json_out, json.dumps(result, indent=2))


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="colorize-eval", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        return 130
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
