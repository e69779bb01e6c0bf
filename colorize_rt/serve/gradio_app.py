"""Gradio UI (mounted on a small FastAPI app that also serves ``/healthz``, ``/api/stats`` and
``POST /api/colorize``). All logic lives in :mod:`colorize_rt.serve.service`."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_bytes
from ..core.constants import DEFAULT_T
from ..core.lazy import require
from ..runtime.api import METHODS, MODES
from .admission import Overloaded
from .service import (
    DEFAULT_SIZE,
    METHOD_LABELS,
    VIDEO_UI_SECONDS,
    ColorizeService,
    UserError,
    blend,
    blend_frames,
    gif_bytes,
    preview_side_by_side,
    status_line,
)

log = logging.getLogger(__name__)

INTRO = (
    "# colorize-rt\n"
    "Upload (or drag and drop) a photo; it is colorized with *Colorful Image Colorization* "
    "(Zhang, Isola & Efros, ECCV 2016). Colour photos are converted to gray first."
)


def build_blocks(service: ColorizeService):
    """The Gradio Blocks UI over ``service``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    gr = require("gradio")
    outdir = Path(tempfile.mkdtemp(prefix="colorize-rt-ui-"))

    def cache_md_text() -> str:
        return "  \n".join(service.cache_text().splitlines())

    def empty(status: str):
        return (None, None, None, None, None, [], None, status, cache_md_text(), None)

    def run(file_bytes, method, temperature, mode, size, ref_bytes, blend_t, hints, palette_text, palette_bytes):
        if file_bytes is None:
            return empty("Upload an image to start.")
        try:
            palette = ui_palette(service, palette_text, palette_bytes)
            res = service.colorize(
                file_bytes,
                method=method,
                temperature=temperature,
                mode=mode,
                size=int(size),
                reference=ref_bytes,
                hints=hints,
                palette=palette,
            )
        except UserError as exc:
            return empty(f"**Error:** {exc}")
        except Overloaded as exc:
            return empty(f"**Busy:** {exc} (about {exc.retry_after_s} s)")
        except Exception as exc:  # noqa: BLE001 - show it in the page instead of a broken UI
            log.exception("colorize failed")
            return empty(f"**Internal error:** {type(exc).__name__}: {exc}")
        stem = res.key[:16]
        png_path = atomic_write_bytes(outdir / f"colorized-{stem}.png", res.png)
        frames = blend_frames(res.gray, res.color)
        gif_path = outdir / f"blend-{stem}.gif"
        if not gif_path.exists():
            atomic_write_bytes(gif_path, gif_bytes(frames))
        n = len(frames)
        gallery = [(frames[i], f"{i / (n - 1):.0%}") for i in sorted({round(x) for x in np.linspace(0, n - 1, 7)})]
        return (
            res.gray,
            res.color,
            preview_side_by_side(res.gray, res.color),
            blend(res.gray, res.color, blend_t),
            str(gif_path),
            gallery,
            str(png_path),
            status_line(res),
            cache_md_text(),
            (res.gray, res.color),
        )

    def run_video(path, stabilize):
        if not path:
            return None, "Upload a video to start."
        try:
            return service.colorize_video_file(path, str(outdir), bool(stabilize))
        except UserError as exc:
            return None, f"**Error:** {exc}"

    def reblend(state, blend_t):
        return None if state is None else blend(state[0], state[1], blend_t)

    def method_changed(method):
        return gr.update(visible=method == "transfer"), gr.update(interactive=method != "transfer")

    with gr.Blocks(title="colorize-rt") as demo:
        gr.Markdown(INTRO)
        gr.Markdown(service.backend_text(), elem_id="backend")
        state = gr.State(None)
        hints = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image (click or drag and drop)", type="binary", elem_id="upload")
                method = gr.Radio(
                    [(METHOD_LABELS[m], m) for m in METHODS],
                    value="classification",
                    label="Method",
                    elem_id="method",
                )
                reference = gr.File(
                    label="Reference image (colours are taken from it)",
                    type="binary",
                    visible=False,
                    elem_id="reference",
                )
                temperature = gr.Slider(
                    0.01,
                    1.0,
                    value=DEFAULT_T,
                    step=0.01,
                    label="Temperature (live preview)",
                    info="annealed mean: 0.38 = the paper's default; lower = closer to the most likely colour, 1 = the mean",
                    elem_id="temperature",
                )
                with gr.Row():
                    mode = gr.Dropdown(list(MODES), value="fit", label="Mode", elem_id="mode")
                    size = gr.Slider(64, 1024, value=DEFAULT_SIZE, step=8, label="Network size", elem_id="size")
                with gr.Accordion("Hints and palette: click the image to colour a point", open=True):
                    with gr.Row():
                        hint_colour = gr.ColorPicker(value="#c03020", label="Hint colour", elem_id="hint-colour")
                        hint_radius = gr.Slider(0, 64, value=8, step=1, label="Hint radius (pixels)", elem_id="hint-radius")
                    with gr.Row():
                        undo = gr.Button("Undo hint", elem_id="hint-undo")
                        clear = gr.Button("Clear hints", elem_id="hint-clear")
                    hints_md = gr.Markdown(hints_text([]), elem_id="hints")
                    palette_text = gr.Textbox(label="Palette colours", placeholder="#2266cc,#aa3311", elem_id="palette")
                    palette_file = gr.File(label="…or a palette photo (its colours)", type="binary", elem_id="palette-file")
                button = gr.Button("Colorize", variant="primary", elem_id="run")
                status = gr.Markdown("Upload an image to start.", elem_id="status")
            with gr.Column(scale=2):
                with gr.Tab("Result"):
                    with gr.Row():
                        grayed = gr.Image(
                            label="Input (gray)",
                            type="numpy",
                            format="png",
                            interactive=False,
                            height=360,
                            elem_id="gray",
                        )
                        result = gr.Image(
                            label="Colorized",
                            type="numpy",
                            format="png",
                            interactive=False,
                            height=360,
                            elem_id="result",
                        )
                    download = gr.File(label="Download (PNG, full resolution)", interactive=False, elem_id="download")
                with gr.Tab("Side by side"):
                    sbs = gr.Image(
                        label="Gray | colour",
                        type="numpy",
                        format="png",
                        interactive=False,
                        elem_id="side-by-side",
                    )
                with gr.Tab("Blend"):
                    blend_t = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Gray → colour", elem_id="blend")
                    blended = gr.Image(label="Blend", type="numpy", format="png", interactive=False, elem_id="blended")
                with gr.Tab("Animation"):
                    gif = gr.Image(label="Blend animation (GIF)", type="filepath", interactive=False, elem_id="gif")
                    frames = gr.Gallery(label="Frames", columns=7, height="auto", elem_id="frames")
                with gr.Tab("Video"):
                    video_in = gr.Video(
                        label=f"Clip (up to {VIDEO_UI_SECONDS:g} s are colorized; longer: colorize-rt clip.mp4)",
                        sources=["upload"],
                        elem_id="video-in",
                    )
                    stabilize = gr.Checkbox(value=True, label="Stabilise colour over time", elem_id="video-stabilize")
                    video_button = gr.Button("Colorize video", elem_id="video-run")
                    video_out = gr.Video(label="Colorized", interactive=False, elem_id="video-out")
                    video_status = gr.Markdown("", elem_id="video-status")
        cache_md = gr.Markdown(cache_md_text(), elem_id="cache-stats")

        inputs = [upload, method, temperature, mode, size, reference, blend_t, hints, palette_text, palette_file]
        outputs = [grayed, result, sbs, blended, gif, frames, download, status, cache_md, state]
        for trigger in (
            upload.change,
            reference.change,
            method.change,
            mode.change,
            size.release,
            temperature.change,
            button.click,
            palette_text.submit,
            palette_file.change,
        ):
            trigger(
                run,
                inputs,
                outputs,
                trigger_mode="always_last",
                concurrency_limit=4,
                concurrency_id="colorize",
                show_progress="minimal",
            )
        blend_t.change(reblend, [state, blend_t], blended, trigger_mode="always_last", show_progress="hidden")
        add_hint.__annotations__["evt"] = gr.SelectData  # Gradio injects the click event by this annotation
        run_kw = {"trigger_mode": "always_last", "concurrency_limit": 4, "concurrency_id": "colorize", "show_progress": "minimal"}
        grayed.select(add_hint, [hints, hint_colour, hint_radius], [hints, hints_md]).then(run, inputs, outputs, **run_kw)
        result.select(add_hint, [hints, hint_colour, hint_radius], [hints, hints_md]).then(run, inputs, outputs, **run_kw)
        undo.click(undo_hint, hints, [hints, hints_md]).then(run, inputs, outputs, **run_kw)
        clear.click(clear_hints, None, [hints, hints_md]).then(run, inputs, outputs, **run_kw)
        video_button.click(
            run_video, [video_in, stabilize], [video_out, video_status], concurrency_limit=1, concurrency_id="video"
        )
        method.change(method_changed, method, [reference, temperature])
    return demo


def ui_palette(service: ColorizeService, text: str | None, data: bytes | None):
    """The UI's palette: the uploaded photo's colours, else the typed ``#hex`` list, else None (UserError if bad)."""
    if data:
        return service.palette_from_upload(data)
    return (text or "").strip() or None


def add_hint(hints, colour, radius, evt):
    """A click on the image: a hint there (``evt.index``: pixel coordinates of the full-resolution image)."""
    x, y = evt.index[0], evt.index[1]
    new = [*(hints or []), {"x": int(x), "y": int(y), "color": hint_hex(colour), "radius": float(radius)}]
    return new, hints_text(new)


def undo_hint(hints):
    new = list(hints or [])[:-1]
    return new, hints_text(new)


def clear_hints():
    return [], hints_text([])


def hint_hex(colour: str) -> str:
    """A colour picker's value (``#rrggbb``, or ``rgb(r, g, b)`` / ``rgba(...)`` from some Gradio versions) as ``#rrggbb``."""
    text = str(colour or "").strip()
    if text.startswith("rgb"):
        parts = [float(v) for v in text[text.index("(") + 1 : text.index(")")].split(",")[:3]]
        return "#" + "".join(f"{max(0, min(255, round(v))):02x}" for v in parts)
    return text


def hints_text(hints: list) -> str:
    """The UI's line about the hints placed so far."""
    if not hints:
        return "No hints yet: click the gray or the colour image."
    last = hints[-1]
    return f"{len(hints)} hint(s); last at ({last['x']}, {last['y']}) {last['color']}, radius {last['radius']:g}"


def create_app(service: ColorizeService, blocks=None):
    """The Gradio UI at ``/`` mounted on the FastAPI app of :mod:`.http_api` (health, stats, colorize)."""
    gr = require("gradio")
    from .http_api import create_api

    blocks = blocks if blocks is not None else build_blocks(service)
    limit = f"{service.max_upload_mb:g}mb"
    return gr.mount_gradio_app(create_api(service), blocks, path="/", max_file_size=limit, footer_links=[])


def serve(service: ColorizeService, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Run the app until interrupted. ``share=True`` uses Gradio's own launcher (public tunnel link,
    UI only); otherwise uvicorn serves the app with its HTTP endpoints on ``host:port``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    blocks = build_blocks(service)
    limit = f"{service.max_upload_mb:g}mb"
    if share:
        blocks.launch(server_name=host, server_port=port, share=True, max_file_size=limit, footer_links=[])
        return
    uvicorn = require("uvicorn")
    print(f"colorize-rt gradio UI on http://{host}:{port}/", flush=True)
    uvicorn.run(create_app(service, blocks), host=host, port=port, log_level="warning")
