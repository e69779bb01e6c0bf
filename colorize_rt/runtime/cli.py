"""The runtime's command (the ``colorize-rt`` command without its ``serve`` subcommand): colorize images
with the shipped model (or any exported one); never imports torch. ``colorize_rt.cli`` adds the
``serve`` subcommand and the result cache's ``--info`` section, which live in higher layers.

Exit codes: 0 all done (or skipped), 1 at least one input failed, 2 usage errors, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable

import click

from .. import __version__
from ..core.constants import DEFAULT_T
from ..core.files import IMAGE_EXTS
from ..core.lazy import available
from .api import METHODS, MODES
from .backends.registry import BACKENDS, BackendError, available_backends, openvino_version, ort_providers
from .backends.selfcheck import int8_dot_path, int8_path_description
from .backends.shipped_models import ModelError
from .guidance.jobs import run_guided_jobs
from .guidance.spec import GuidanceError, load_guidance
from .limits import CRF, MAX_PIXELS, OVERLAP, QUALITY, SCALE, SIZE, START_SECONDS, TEMPERATURE, THREADS, TILE
from .pipeline.folder import Options, Summary, UsageError, check_outputs_writable, expand_inputs, plan_outputs, run_batch
from .pipeline.images import DEFAULT_MAX_PIXELS, ImageError, read_image
from .video.io import VIDEO_CODECS, X264_PRESETS
from .video.plan import plan_video_jobs, run_video_jobs, split_video_inputs, without_video_notes

PROG = "colorize-rt"

# An extra ``--info`` section from a higher layer: key -> (collect() -> dict, format(dict) -> text).
InfoSections = dict[str, tuple[Callable[[], dict], Callable[[dict], str]]]


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _usage(msg: str) -> None:
    raise click.UsageError(msg)


def info_dict(colorizer=None, model: str = "default", error: str | None = None, sections: InfoSections | None = None) -> dict:
    """What ``--info`` prints: versions, backends, the model (or why it cannot be opened) and extra sections.

    Args:
        colorizer: an open ``Colorizer`` (``None``: report ``error`` for ``model`` instead).
        model: the model name asked for.
        error: why the model could not be opened.
        sections: extra sections from higher layers (see ``InfoSections``).

    Returns:
        A JSON-serialisable dict.
    """
    import onnxruntime as ort

    out = {
        "colorize_rt": __version__,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort_providers(),
        "backends_available": available_backends(),
        "tensorrt_importable": available("tensorrt"),
        "cuda_python_importable": available("cuda.bindings") or available("cuda.cudart"),
        "cpu_int8_path": {"path": int8_dot_path(), "description": int8_path_description()},
        "openvino": openvino_version(),
    }
    if colorizer is not None:
        out.update(colorizer.info())
    else:
        out["model"] = {"name": model, "error": error}
    for key, (collect, _) in (sections or {}).items():
        out[key] = collect()
    return out


def _print_info(d: dict, sections: InfoSections | None = None) -> None:
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
            ] + [f"  {k}: {_short_metadata(v)}" for k, v in sorted(model["metadata"].items())]
    cpu = d.get("cpu_int8_path") or {}
    lines.append(f"CPU INT8 path: {cpu.get('path')} ({cpu.get('description')})")
    lines += [f"self-check: {v['line']}" for v in d.get("selfcheck", [])]
    lines += (d.get("auto_choice") or {}).get("lines", [])  # the table auto chose from (backends.auto_choice)
    lines += [f"note: {n}" for n in d.get("notes", [])]
    for key, (_, fmt) in (sections or {}).items():
        lines.append(fmt(d[key]))
    click.echo("\n".join(lines))


def _short_metadata(value: str, limit: int = 160) -> str:
    """Long metadata values (the self-check probe: ~11 KB of base64) are cut, with their length."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value):,} characters)"


@click.command(name=PROG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", help="Output file (one input) or folder (many inputs; names kept).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(ext.lstrip(".") for ext in IMAGE_EXTS)),
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
    type=click.Choice(METHODS),
    default="classification",
    show_default=True,
    help="'transfer': model-free Reinhard colour transfer from --reference.",
)
@click.option("--reference", type=click.Path(dir_okay=False), help="Reference colour image for --method transfer.")
@click.option("--hint", "hint_args", multiple=True, metavar="X,Y,#RRGGBB[,R]", help="Colour at pixel X,Y (repeat; R: radius).")
@click.option("--hints", "hints_file", type=click.Path(dir_okay=False), help='Hints as JSON: [{"x", "y", "color", "radius"}].')
@click.option("--palette", help="Colour palette: a reference image, or colours '#hex,#hex,...' (classification models).")
@click.option("--mode", type=click.Choice(MODES), default="fit", show_default=True)
@click.option(
    "--size",
    type=click.IntRange(*SIZE.range),
    default=256,
    show_default=True,
    help="fit mode: network input size (longer side).",
)
@click.option("--tile", type=click.IntRange(*TILE.range), default=512, show_default=True, help="tiled mode: tile size.")
@click.option(
    "--overlap",
    type=click.IntRange(*OVERLAP.range),
    default=64,
    show_default=True,
    help="tiled mode: tile overlap (feather-blended).",
)
@click.option(
    "--scale",
    type=SCALE.click_type(),
    default=1.0,
    show_default=True,
    help="tiled mode: scale of the image the tiles are cut from.",
)
@click.option(
    "--temperature",
    "-T",
    type=TEMPERATURE.click_type(),
    help=f"Annealed-mean temperature (default: the model's, {DEFAULT_T}).",
)
@click.option("--side-by-side", is_flag=True, help="Write gray | colour.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output already exists.")
@click.option(
    "--max-pixels",
    type=click.IntRange(*MAX_PIXELS.range),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images declaring more pixels (decompression-bomb guard); 0 = no limit.",
)
@click.option("--threads", type=THREADS.click_type(), default=0, help="CPU threads for ONNX Runtime (0 = all).")
@click.option("--quality", type=click.IntRange(*QUALITY.range), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--start", type=START_SECONDS.click_type(), default=0.0, help="Video: skip this many seconds.")
@click.option("--duration", type=START_SECONDS.click_type(), help="Video: colorize this many seconds (a preview).")
@click.option("--no-stabilize", is_flag=True, help="Video: plain per-frame colour (no temporal stabiliser).")
@click.option(
    "--two-pass",
    is_flag=True,
    help="Video: stabilise forward and backward (steadier; reads the file twice, so not from a pipe).",
)
@click.option("--keep-partial", is_flag=True, help="Video: keep the frames before the damage of a damaged file.")
@click.option("--crf", type=CRF.click_type(), default=18, show_default=True, help="Video: x264/x265 quality (0 = lossless).")
@click.option("--preset", type=click.Choice(X264_PRESETS), default="medium", show_default=True, help="Video: encoder speed.")
@click.option("--codec", type=click.Choice(sorted(VIDEO_CODECS)), default="h264", show_default=True, help="Video: output codec.")
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
    hint_args,
    hints_file,
    palette,
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
    start,
    duration,
    no_stabilize,
    two_pass,
    keep_partial,
    crf,
    preset,
    codec,
    quiet,
    show_info,
    as_json,
):
    """Colorize grayscale photos: colorize-rt photo.jpg  |  colorize-rt photos/ -o out/"""
    from .api import Colorizer

    max_side = max(size, tile) if mode == "tiled" else size
    if show_info:
        sections = click.get_current_context().obj
        os.environ.setdefault("COLORIZE_RT_ORT_CACHE", "read")  # --info writes no cache (runtime/ort_cache.py)
        os.environ.setdefault("COLORIZE_RT_SELFCHECK_CACHE", "read")  # ... nor self-check verdicts (runtime/selfcheck.py)
        try:
            colorizer = Colorizer(
                model,
                backend,
                method if method != "transfer" else "classification",
                threads,
                max_side=max_side,
                warn=_say,
            )
            d = info_dict(colorizer, sections=sections)
        except (ModelError, BackendError) as exc:
            d = info_dict(None, model, str(exc), sections=sections)
        if as_json:
            click.echo(json.dumps(d, indent=2, default=str))
        else:
            _print_info(d, sections)
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
    guidance = _guidance(hint_args, hints_file, palette, method, mode, max_pixels)
    guided = guidance is not None

    notes: list[str] = []
    photo_only = mode != "fit" or side_by_side or method == "transfer" or guided
    video_jobs, images = _video_jobs(inputs, output, photo_only, two_pass and no_stabilize)
    found, missing = expand_inputs(images, notes) if images or not video_jobs else ([], [])
    notes = without_video_notes(notes, video_jobs)
    try:
        jobs = plan_outputs(found, output, fmt, many=len(inputs) > 1, notes=notes) if found or not video_jobs else []
        check_outputs_writable(jobs)  # before any compute; also removes temp files of killed runs
    except UsageError as exc:
        _usage(str(exc))
    try:
        purpose = "throughput" if len(jobs) > 1 else "latency"  # a folder: network calls side by side (pipeline.folder)
        runs = len(jobs) if mode == "fit" and not video_jobs and not guided else None  # auto: start-up vs speed
        colorizer = Colorizer(model, backend, method, threads, max_side=max_side, warn=_say, purpose=purpose, runs=runs)
    except (ModelError, BackendError) as exc:
        _usage(str(exc))

    for msg in notes:
        _say(f"{PROG}: {msg}")
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
    with colorizer:
        run = run_batch if not guided else _guided_runner(colorizer, guidance, temperature, size)
        summary = run(jobs, colorizer, opts, report=_say, progress=progress) if jobs or not video_jobs else Summary()
        video = {"size": size, "temperature": temperature, "stabilize": not no_stabilize, "start": start, "codec": codec}
        video |= {"duration": duration or None, "crf": crf, "preset": preset, "keep_partial": keep_partial, "two_pass": two_pass}
        summary.failed += _run_videos(video_jobs, colorizer, video | {"max_pixels": max_pixels}, progress, skip_existing, quiet)
    summary.failed += len(missing)
    if not quiet and (jobs or not video_jobs):
        _say(summary.line())
    return 1 if summary.failed else 0


def _guidance(hint_args, hints_file, palette, method: str, mode: str, max_pixels: int):
    """(hints, palette target) from the --hint/--hints/--palette options, or None without any; usage errors exit 2."""
    if not (hint_args or hints_file or palette is not None):
        return None
    if method == "transfer" or mode != "fit":
        _usage("--hint/--hints/--palette need a network (not --method transfer) and --mode fit")
    try:
        return load_guidance(hint_args, hints_file, palette, max_pixels)
    except GuidanceError as exc:
        _usage(str(exc))


def _guided_runner(colorizer, guidance, temperature, size: int):
    """``run_batch``'s stand-in for photos with hints / a palette (``runtime.guidance.jobs``)."""
    hints, target = guidance
    if target is not None and not colorizer.has_logits:
        _usage(f"--palette: {colorizer.model_path.name} has no 313-bin distribution (an L2 model): use a classification model")
    kw = {"temperature": temperature, "size": size, "hints": hints, "palette": target}
    return lambda jobs, _, opts, **run_kw: run_guided_jobs(jobs, lambda image: colorizer.colorize(image, **kw), opts, **run_kw)


def _video_jobs(inputs, output: str | None, photo_only_options: bool, two_pass_unstabilized: bool = False):
    """(video jobs, the inputs left for the image pipeline); no PyAV import unless a file needs probing."""
    if two_pass_unstabilized:
        _usage("--two-pass is a mode of the stabiliser: drop --no-stabilize or --two-pass")
    videos, images = split_video_inputs(list(inputs), IMAGE_EXTS)
    try:
        video_jobs = plan_video_jobs(videos, output, many=len(inputs) > 1 or bool(images))
    except ValueError as exc:
        _usage(str(exc))
    if video_jobs and photo_only_options:
        _usage("videos take fit mode only (no --mode tiled, --side-by-side or --method transfer)")
    return video_jobs, images


def _run_videos(video_jobs, colorizer, settings: dict, progress: bool, skip_existing: bool, quiet: bool) -> int:
    """Colorize the videos one after another (``runtime.video``); returns how many failed."""
    if not video_jobs:
        return 0
    from .video.job import VideoOptions

    kw = {"report": _say, "progress": progress, "skip_existing": skip_existing, "quiet": quiet}
    return run_video_jobs(video_jobs, colorizer, VideoOptions(**settings), **kw)[1]


def _on_sigterm(signum, frame):  # let atomic writes clean up their temp files, as on Ctrl-C
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Make SIGTERM act as Ctrl-C (KeyboardInterrupt), so in-flight atomic writes clean up and exit 130."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def main(argv: list[str] | None = None, info_sections: InfoSections | None = None) -> None:
    """Run the command and exit with its code (``colorize_rt.cli.main`` is the installed entry point).

    Args:
        argv: arguments (default ``sys.argv[1:]``).
        info_sections: extra ``--info`` sections from higher layers.
    """
    interrupt_on_sigterm()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:  # `colorize-rt batch SRC DST`: the archive job (runtime.batch)
        from .batch.cli import main as batch_main

        batch_main(argv[1:])
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False, obj=info_sections or {})
    except click.UsageError as exc:
        _say(f"{PROG}: error: {exc.format_message()}")
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        _say(f"{PROG}: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
