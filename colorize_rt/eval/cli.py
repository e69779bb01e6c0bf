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

from ..core.atomic import atomic_write_text, check_writable
from ..core.constants import DEFAULT_T
from ..core.files import list_images, same_file
from ..core.metrics import check_prior
from ..runtime.limits import TEMPERATURE
from .bootstrap import MAX_RESAMPLES
from .groups import GroupBy, check_groups, group_function
from .predictors import predictor_for
from .scoring import evaluate, format_table


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="checkpoint (.pt) or ONNX model; repeat to compare several",
)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="folder of colour images")
@click.option(
    "--video",
    "videos",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="colour clip: turned gray, colorized per frame and stabilised, scored for flicker (E_warp, CDC) and quality "
    "beside the source (eval.video_metrics); repeat for several; --limit caps the frames",
)
@click.option("--temperature", default=DEFAULT_T, show_default=True, type=TEMPERATURE.click_type())
@click.option("--limit", default=0, type=click.IntRange(0, 10**7), help="evaluate at most this many images (0 = all)")
@click.option(
    "--prior",
    "prior_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="p(bin) as a 313-value .npy (e.g. the ImageNet prior): adds the paper's rebalanced AuC, weights 1/p",
)
@click.option(
    "--bootstrap",
    "resamples",
    default=0,
    show_default=True,
    type=click.IntRange(0, MAX_RESAMPLES),
    help="add 95% intervals from this many paired resamples of the images (e.g. 1000; 0 = off): how much of a "
    "number, or of a difference between two models, is the particular set of photos",
)
@click.option(
    "--group-by",
    type=click.Choice([g.value for g in GroupBy]),
    help="also score each group of images on its own: 'prefix' = the file name up to its first '_' (the "
    "training data's source, e.g. cal101_), 'folder' = the first folder below --data",
)
@click.option(
    "--hint-sweep",
    is_flag=True,
    help="point hints and palette instead (eval.hint_sweep): siggraph17's sweep of N hints, the oracle and a wrong "
    "reference palette, with Levin et al. 2004 as the baseline; the first --model (default: the shipped default)",
)
@click.option(
    "--palette-sweep",
    is_flag=True,
    help="the palette alone (eval.palette_sweep): oracle and wrong-reference palettes in each setting (per-L* bands "
    "or one target, sharper or plain temperature), with the even / odd halves; the first --model (default: the shipped default)",
)
@click.option("--two-pass", is_flag=True, help="with --video: also score the two-pass (forward + backward) stabiliser")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="write results as JSON")
def cli(models, data, videos, temperature, limit, prior_path, resamples, group_by, hint_sweep, palette_sweep, two_pass, json_out):
    """Score models with the paper's metrics (raw / rebalanced AuC, PSNR) against the gray baseline."""
    if json_out:
        _check_json_out(json_out, [*models, *videos, *([prior_path] if prior_path else [])])
    if videos or data is None:
        return _score_videos(videos, models, temperature, limit, json_out, two_pass)
    files = list_images(data, limit or None)
    if not files:
        raise _UsageError(f"no images under {data}")
    if hint_sweep:
        return _hint_sweep(files, models, temperature, json_out)
    if palette_sweep:
        return _palette_sweep(files, models, temperature, json_out)
    group_of = group_function(group_by, data) if group_by else None
    if group_of is not None:
        try:
            check_groups(files, group_of)
        except ValueError as exc:
            raise click.BadParameter(f"{group_by}: {exc}", param_hint="--group-by") from None
    prior = _load_prior(prior_path) if prior_path else None
    predictors = {}
    for path in models:
        name = path.stem if path.stem not in predictors else str(path)
        try:
            predictors[name] = predictor_for(path, temperature)
        except Exception as exc:  # a user's file: ONNX Runtime and torch raise many types for bad ones
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise click.ClickException(f"cannot load {path}: {first}") from None
    result = evaluate(files, predictors, prior=prior, resamples=resamples, group_of=group_of)
    scored, gray = result["methods"]["gray"]["n_images"], result["n_excluded"]
    unreadable = len(files) - scored - gray
    if not scored:
        raise _UsageError(f"no colour images to score in {data} ({gray} nearly colourless, {unreadable} unreadable)")
    if unreadable:
        click.echo(f"warning: {unreadable} of {len(files)} image files in {data} are unreadable and were skipped", err=True)
    result["temperature"] = temperature
    if prior_path:
        result["prior"] = str(prior_path)
    result["data"] = str(data)
    click.echo(format_table(result))
    if json_out:
        atomic_write_text(json_out, json.dumps(result, indent=2))


def _logits_fn(models):
    """The first --model's (or the shipped default's) L -> (ab, logits) function; a bad file is a usage error."""
    from .hint_sweep import model_logits_fn

    try:
        return model_logits_fn(models[0] if models else None)
    except Exception as exc:  # a user's file: ONNX Runtime raises many types for bad ones
        raise _UsageError(f"cannot use {models[0] if models else 'default'}: {str(exc).splitlines()[0]}") from None


def _hint_sweep(files, models, temperature, json_out) -> None:
    """``--hint-sweep``: the point-hint and palette sweep of the first --model (or the shipped default)."""
    from .hint_sweep import format_sweep, hint_sweep

    logits_fn = _logits_fn(models)
    result = hint_sweep(files, logits_fn, temperature=temperature)
    click.echo(format_sweep(result))
    if json_out:
        atomic_write_text(json_out, json.dumps(result, indent=2, default=str))


def _palette_sweep(files, models, temperature, json_out) -> None:
    """``--palette-sweep``: the palette's oracle and wrong reference per setting, first --model (or the shipped default)."""
    from .palette_sweep import format_report, palette_report, palette_sweep

    logits_fn = _logits_fn(models)
    result = palette_sweep(files, logits_fn, temperature=temperature)
    if not result["none"]:
        raise _UsageError(f"no colour images to score ({result['n_excluded']} nearly colourless or unreadable)")
    report = palette_report(result)
    click.echo(format_report(report))
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2))


def _score_videos(videos, models, temperature, limit, json_out, two_pass=False) -> None:
    """``--video``: one table per clip (the first --model, or the shipped default)."""
    from ..runtime.api import Colorizer, ModelError
    from ..runtime.video.io import VideoError
    from .video_metrics import format_video_table, score_video

    if not videos:
        raise _UsageError("pass --data FOLDER (images) or --video CLIP")
    try:
        colorizer = Colorizer(str(models[0]) if models else "default", warn=lambda m: click.echo(m, err=True))
    except ModelError as exc:
        raise _UsageError(str(exc)) from None
    results = []
    with colorizer:
        for clip in videos:
            try:
                results.append(score_video(clip, colorizer, temperature=temperature, max_frames=limit, two_pass=two_pass))
            except VideoError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(format_video_table(results[-1]))
    if json_out:
        atomic_write_text(json_out, json.dumps({"videos": results, "temperature": temperature}, indent=2))


class _UsageError(click.ClickException):
    """A user mistake: one line (``Error: ...``, no usage text), exit code 2."""

    exit_code = 2


def _check_json_out(json_out: Path, inputs: list[Path]) -> None:
    """Before any work: --json must not name an input, and its folder must be writable."""
    for path in inputs:
        if same_file(json_out, path):
            raise _UsageError(f"--json {json_out} would overwrite the input {path}: choose another file")
    try:
        check_writable(json_out.parent)
    except OSError as exc:
        raise _UsageError(f"--json {json_out}: {exc.strerror}") from None


def _load_prior(path: Path) -> np.ndarray:
    try:
        prior = np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # numpy's own text suggests allow_pickle=True, unsafe for a file from elsewhere
        raise click.BadParameter(f"{path}: not a .npy array (colorize-prior writes one)", param_hint="--prior") from None
    try:
        return check_prior(prior)
    except ValueError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--prior") from None


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
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
