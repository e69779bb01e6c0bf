"""``colorize-export`` (checkpoint -> ONNX, fp32 or fp16, optional Triton repository) and
``colorize-engine`` (ONNX -> TensorRT engine + sidecar).

Exit codes: 0 done, 1 check failed (fp16 accuracy), 2 usage error, 3 TensorRT or GPU missing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from ..core.constants import DEFAULT_T
from ..core.files import same_file
from ..core.lazy import MissingDependency
from ..runtime.limits import TEMPERATURE, TILE
from .tensorrt_engine import CARD_PROFILES

EXIT_CHECK, EXIT_USAGE, EXIT_NO_TRT = 1, 2, 3
PRECISIONS = ("fp32", "fp16")
FP16_MAX_DROP = 0.2


def _fail(msg: str, code: int = EXIT_USAGE):
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="ONNX file to write.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option(
    "--temperature",
    type=TEMPERATURE.click_type(),
    default=DEFAULT_T,
    show_default=True,
    help="Default of the model's temperature input (callers may still pass their own).",
)
@click.option("--no-ema", is_flag=True, help="Export the raw weights instead of the EMA weights.")
@click.option(
    "--store-fp16",
    is_flag=True,
    help="fp32: store the weights as fp16 (half the file; compute stays fp32, Casts fold at load).",
)
@click.option(
    "--val",
    "val_dir",
    type=click.Path(file_okay=False),
    default=None,
    help=f"fp16: check rebalanced AuC on this folder is within {FP16_MAX_DROP} of fp32 (else exit 1).",
)
@click.option("--val-images", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option(
    "--triton",
    "triton_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write a Triton model repository here.",
)
@click.option("--triton-name", default="colorize", show_default=True)
@click.option("--triton-max-batch", type=click.IntRange(1, 1024), default=8, show_default=True)
def export_main(
    checkpoint,
    output,
    precision,
    temperature,
    no_ema,
    store_fp16,
    val_dir,
    val_images,
    triton_dir,
    triton_name,
    triton_max_batch,
):
    """Export CHECKPOINT to ONNX (input L [N,1,H,W] + temperature, output ab [N,2,H,W])."""
    out = Path(output)
    if same_file(out, checkpoint):
        _fail(f"refusing to overwrite the checkpoint {checkpoint} with the ONNX model: choose another -o")
    if triton_dir:
        _check_triton_name(triton_name)
    if val_dir and precision == "fp32":
        click.echo("note: --val checks fp16 exports only; ignored with --precision fp32", err=True)
    try:
        val_files = None
        if val_dir and precision == "fp16":
            from ..core.files import list_images
            from ..eval.gate import require_colour_images

            val_files = list_images(val_dir, val_images)
            require_colour_images(val_files, val_dir, "--val")

        from .onnx_export import export_checkpoint

        if precision == "fp32" and store_fp16:
            from .compress import store_weights_fp16

            with tempfile.TemporaryDirectory(prefix="colorize-export.") as tmp:
                fp32 = Path(tmp) / "model.fp32.onnx"
                export_checkpoint(checkpoint, fp32, use_ema=not no_ema, default_temperature=temperature)
                store_weights_fp16(fp32, out)
        elif precision == "fp32":
            export_checkpoint(checkpoint, out, use_ema=not no_ema, default_temperature=temperature)
        else:
            from .fp16 import convert_fp16

            with tempfile.TemporaryDirectory(prefix="colorize-export.") as tmp:
                fp32 = Path(tmp) / "model.fp32.onnx"
                export_checkpoint(checkpoint, fp32, use_ema=not no_ema, default_temperature=temperature)
                cand = Path(tmp) / "model.fp16.onnx"
                convert_fp16(fp32, cand)
                if val_files is not None:
                    from ..eval.gate import accuracy_gate

                    gate = accuracy_gate(fp32, cand, val_files, FP16_MAX_DROP, names=("fp32", "fp16"))
                    click.echo(gate.message())
                    if not gate.passed:
                        _fail(f"fp16 check failed, nothing written: {gate.message()}", EXIT_CHECK)
                from ..core.atomic import atomic_path

                with atomic_path(out) as t:
                    Path(t).write_bytes(cand.read_bytes())
        click.echo(f"wrote {out} ({precision})")
        if triton_dir:
            from .triton import write_repository

            d = write_repository(out, triton_dir, name=triton_name, max_batch_size=triton_max_batch)
            click.echo(f"wrote Triton model repository {d} (config.pbtxt validated)")
    except (OSError, ValueError, MissingDependency) as exc:
        _fail(str(exc))


def _check_triton_name(name: str) -> None:
    """``--triton-name`` before any work (a name with path separators would write outside ``--triton``)."""
    from .triton import check_model_name

    try:
        check_model_name(name)
    except ValueError as exc:
        _fail(f"--triton-name: {exc}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--profile",
    "profile_name",
    type=click.Choice([*CARD_PROFILES, "custom"]),
    default="rtx3060-6gb",
    show_default=True,
    help="Card to size the optimisation profiles for.",
)
@click.option("--memory-gib", type=click.FloatRange(0.5, 1024), default=None, help="custom: the card's memory in GiB.")
@click.option(
    "--workspace-gib", type=click.FloatRange(0.0625, 1024), default=None, help="Builder workspace limit (default per profile)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Engine file (default MODEL stem + .PROFILE.engine next to MODEL).",
)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False),
    default=None,
    help="Timing cache file (default timing.cache next to the engine); reused and updated.",
)
@click.option("--tile", type=click.IntRange(64, TILE.range[1]), default=512, show_default=True, help="Runtime tile size.")
@click.option("--version-compatible", is_flag=True, help="Engine runs on later TensorRT versions too.")
@click.option("--hardware-compatible", is_flag=True, help="Engine runs on any Ampere or newer GPU.")
@click.option("--dry-run", is_flag=True, help="Print the profile sizing and exit (no TensorRT needed).")
@click.option(
    "--triton",
    "triton_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also build a Triton plan (version-compatible, one temperature per request) into this model repository.",
)
@click.option("--triton-name", default="colorize-trt", show_default=True)
def engine_main(
    model,
    profile_name,
    memory_gib,
    workspace_gib,
    output,
    timing_cache,
    tile,
    version_compatible,
    hardware_compatible,
    dry_run,
    triton_dir,
    triton_name,
):
    """Build a TensorRT engine (strongly typed: precision comes from the ONNX) for MODEL."""
    from . import tensorrt_engine as te

    model = Path(model)
    if not model.is_file():
        _fail(f"model not found: {model}")
    if triton_dir:
        _check_triton_name(triton_name)
    if output and same_file(output, model):
        _fail(f"refusing to overwrite the model {model} with the engine: choose another -o")
    try:
        if memory_gib is not None and profile_name != "custom":
            click.echo(f"note: --memory-gib is for --profile custom; {profile_name} sets its own memory", err=True)
        card = te.card_profile(profile_name, memory_gib, workspace_gib)
        plan = te.plan_for_onnx(model, card, tile)
    except ValueError as exc:
        _fail(str(exc))
    if dry_run:
        click.echo(plan.describe())
        return
    engine = Path(output) if output else model.with_name(f"{model.stem}.{card.name}.engine")
    try:
        te.require_tensorrt()
        te.current_device()
    except MissingDependency:
        _fail(te.TRT_MISSING, EXIT_NO_TRT)
    except (RuntimeError, OSError) as exc:
        _fail(
            f"{exc}: TensorRT engines are built on the machine with the NVIDIA GPU that runs them",
            EXIT_NO_TRT,
        )
    try:
        side = te.build_engine(
            model,
            engine,
            card,
            timing_cache=timing_cache,
            version_compatible=version_compatible,
            hardware_compatible=hardware_compatible,
            tile=tile,
            log=click.echo,
        )
        click.echo(
            f"wrote {engine} and {te.sidecar_path(engine).name} ({side['precision']}, TensorRT "
            f"{side['tensorrt_version']}, {side['gpu_name']} sm {side['compute_capability']})"
        )
        if triton_dir:
            d = _triton_plan(
                te,
                model,
                card,
                Path(timing_cache) if timing_cache else engine.parent / "timing.cache",
                tile,
                triton_dir,
                triton_name,
            )
            click.echo(f"wrote Triton model repository {d}")
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc), EXIT_CHECK)


def _triton_plan(te, model: Path, card, timing_cache: Path, tile: int, triton_dir: str, triton_name: str) -> Path:
    """Build the Triton plan (``tiles`` profile, per-sample temperature, version-compatible) and write the repository."""
    from .triton import model_has_logits, write_repository

    with tempfile.TemporaryDirectory(prefix="colorize-triton.") as tmp:
        plan_file = Path(tmp) / "model.plan"
        side = te.build_engine(
            model,
            plan_file,
            card,
            timing_cache=timing_cache,
            version_compatible=True,
            per_sample_temperature=True,
            profiles=["tiles"],
            tile=tile,
            log=click.echo,
        )
        max_n = side["inputs"]["L"]["profiles"][0]["max"][0]
        return write_repository(plan_file, triton_dir, name=triton_name, max_batch_size=max_n, logits=model_has_logits(model))
