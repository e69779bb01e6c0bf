"""``colorize-rt``: colorize images with the shipped model (or any exported one); never imports torch.

Exit codes: 0 all done (or skipped), 1 at least one input failed, 2 usage errors, 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys

import click

from .. import __version__
from ..core.lazy import available
from .backends import BACKENDS, BackendError, available_backends, ort_providers
from .batch import Options, UsageError, expand_inputs, plan_outputs, run_batch
from .images import DEFAULT_MAX_PIXELS, ImageError, read_image
from .models import ModelError

PROG = "colorize-rt"


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _usage(msg: str) -> None:
    raise click.UsageError(msg)


def info_dict(engine=None, model: str = "default", error: str | None = None) -> dict:
    import onnxruntime as ort

    out = {
        "colorize_rt": __version__,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort_providers(),
        "backends_available": available_backends(),
        "tensorrt_importable": available("tensorrt"),
        "cuda_python_importable": available("cuda.bindings") or available("cuda.cudart"),
    }
    if engine is not None:
        out.update(engine.info())
    else:
        out["model"] = {"name": model, "error": error}
    from ..serve.cache import cache_info

    out["cache"] = cache_info()
    return out


def _print_info(d: dict) -> None:
    model = d.get("model", {})
    lines = [
        f"colorize-rt {d['colorize_rt']}  (onnxruntime {d['onnxruntime']})",
        "backends:  " + "  ".join(f"{k}={'yes' if v else 'no'}" for k, v in d["backends_available"].items()),
        f"ORT providers: {', '.join(d['onnxruntime_providers'])}",
        f"tensorrt importable: {d['tensorrt_importable']}   cuda-python importable: {d['cuda_python_importable']}",
    ]
    if "error" in model:
        lines.append(f"model: {model['name']}: {model['error']}")
    else:
        lines += [
            f"backend in use: {d.get('backend')} ({d.get('runner', '-')}"
            + (f"; providers {', '.join(d['providers'])}" if d.get("providers") else "")
            + ")",
            f"method: {d.get('method')}",
        ]
        if model:
            lines += [
                f"model: {model['path']}",
                f"sha256: {model['sha256']}",
                f"precision: {model['precision']}   size: {model['size_bytes'] / 1e6:.2f} MB",
                "metadata:",
            ] + [f"  {k}: {v}" for k, v in sorted(model["metadata"].items())]
    if "cache" in d:
        from ..serve.cache import format_cache_info

        lines.append(format_cache_info(d["cache"]))
    click.echo("\n".join(lines))


@click.command(name=PROG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", help="Output file (one input) or folder (many inputs; names kept).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"]),
    help="Output format / extension (default: the input's).",
)
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="default | default-int8 | default-l2 | PATH.onnx | PATH.engine",
)
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option(
    "--method",
    type=click.Choice(["classification", "l2", "transfer"]),
    default="classification",
    show_default=True,
    help="'transfer': model-free Reinhard colour transfer from --reference.",
)
@click.option("--reference", type=click.Path(dir_okay=False), help="Reference colour image for --method transfer.")
@click.option("--mode", type=click.Choice(["fit", "tiled"]), default="fit", show_default=True)
@click.option(
    "--size",
    type=click.IntRange(16, 4096),
    default=256,
    show_default=True,
    help="fit mode: network input size (longer side).",
)
@click.option("--tile", type=click.IntRange(32, 4096), default=512, show_default=True, help="tiled mode: tile size.")
@click.option(
    "--overlap",
    type=click.IntRange(0, 2048),
    default=64,
    show_default=True,
    help="tiled mode: tile overlap (feather-blended).",
)
@click.option(
    "--scale",
    type=click.FloatRange(0.01, 1.0),
    default=1.0,
    show_default=True,
    help="tiled mode: scale of the image the tiles are cut from.",
)
@click.option(
    "--temperature",
    "-T",
    type=click.FloatRange(0.01, 10.0),
    help="Annealed-mean temperature (default: the model's, 0.38).",
)
@click.option("--side-by-side", is_flag=True, help="Write gray | colour.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output already exists.")
@click.option(
    "--max-pixels",
    type=click.IntRange(0),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images declaring more pixels (decompression-bomb guard); 0 = no limit.",
)
@click.option("--threads", type=click.IntRange(0), default=0, help="CPU threads for ONNX Runtime (0 = all).")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--info", "show_info", is_flag=True, help="Print backends, model, precision and metadata; exit.")
@click.option("--json", "as_json", is_flag=True, help="With --info: print JSON.")
@click.version_option(__version__, prog_name=PROG)
def cli(
    inputs,
    output,
    fmt,
    model,
    backend,
    method,
    reference,
    mode,
    size,
    tile,
    overlap,
    scale,
    temperature,
    side_by_side,
    skip_existing,
    max_pixels,
    threads,
    quality,
    quiet,
    show_info,
    as_json,
):
    """Colorize grayscale photos: colorize-rt photo.jpg  |  colorize-rt photos/ -o out/"""
    from .api import Engine

    max_side = max(size, tile) if mode == "tiled" else size
    if show_info:
        try:
            engine = Engine(
                model,
                backend,
                method if method != "transfer" else "classification",
                threads,
                max_side=max_side,
                warn=_say,
            )
            d = info_dict(engine)
        except (ModelError, BackendError) as exc:
            d = info_dict(None, model, str(exc))
        if as_json:
            click.echo(json.dumps(d, indent=2, default=str))
        else:
            _print_info(d)
        return 0
    if not inputs:
        _usage("no inputs: pass image files, folders or globs (or --info)")
    if mode == "tiled" and overlap >= tile:
        _usage(f"--overlap ({overlap}) must be smaller than --tile ({tile})")
    ref_image = None
    if method == "transfer":
        if not reference:
            _usage("--method transfer needs --reference IMG (a colour image to take the palette from)")
        try:
            ref_image = read_image(reference, max_pixels)
        except ImageError as exc:
            _usage(f"--reference: {exc}")
    elif reference:
        _usage("--reference is only used with --method transfer")

    found, missing = expand_inputs(list(inputs))
    try:
        jobs = plan_outputs(found, output, fmt, many=len(inputs) > 1)
    except UsageError as exc:
        _usage(str(exc))
    try:
        engine = Engine(model, backend, method, threads, max_side=max_side, warn=_say)
    except (ModelError, BackendError) as exc:
        _usage(str(exc))

    for msg in missing:
        _say(f"{PROG}: error: {msg}")
    opts = Options(
        mode=mode,
        size=size,
        tile=tile,
        overlap=overlap,
        scale=scale,
        temperature=temperature,
        side_by_side=side_by_side,
        skip_existing=skip_existing,
        max_pixels=max_pixels,
        quality=quality,
        reference=ref_image,
    )
    progress = not quiet and sys.stderr.isatty()
    with engine:
        summary = run_batch(jobs, engine, opts, report=_say, progress=progress)
    summary.failed += len(missing)
    if not quiet:
        _say(summary.line())
    return 1 if summary.failed else 0


def _on_sigterm(signum, frame):  # let atomic writes clean up their temp files, as on Ctrl-C
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # `colorize-rt serve --ui gradio|streamlit` (colorize_rt.serve)
        from ..serve.cli import serve_main

        sys.exit(serve_main(argv[1:], prog_name=f"{PROG} serve"))
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as exc:
        _say(f"{PROG}: error: {exc.format_message()}")
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        _say(f"{PROG}: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
