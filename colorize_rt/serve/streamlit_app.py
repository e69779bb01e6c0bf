"""Streamlit UI: the same features as the Gradio app, through the same service layer.

Run with ``colorize-rt serve --ui streamlit`` (settings arrive as ``COLORIZE_RT_*`` environment variables).
"""

from __future__ import annotations

import streamlit as st

from colorize_rt.core.constants import DEFAULT_T
from colorize_rt.runtime.api import METHODS, MODES
from colorize_rt.runtime.guidance.spec import GuidanceError, parse_hint
from colorize_rt.serve.admission import Overloaded
from colorize_rt.serve.gradio_app import ui_palette  # the same palette rule as the Gradio app (gradio is imported lazily)
from colorize_rt.serve.service import (
    DEFAULT_SIZE,
    METHOD_LABELS,
    ColorizeService,
    UserError,
    blend,
    blend_frames,
    gif_bytes,
    preview_side_by_side,
    status_line,
)

DISPLAY_WIDTH = 360


def ui_hints(text: str | None):
    """The hints box: a JSON list (``[{"x": 120, "y": 80, "color": "#c03020", "radius": 8}]``), or one
    ``X,Y,#RRGGBB[,R]`` per line (the CLI's ``--hint``); empty -> None.

    Returns:
        The JSON text or a list of ``PointHint`` (the service checks both, and the count and bounds).

    Raises:
        UserError: a malformed line (one line naming it).
    """
    text = (text or "").strip()
    if not text or text.startswith("["):
        return text or None
    hints = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                hints.append(parse_hint(line))
            except GuidanceError as exc:
                raise UserError(f"hints line {i}: {exc}") from None
    return hints


@st.cache_resource
def get_service() -> ColorizeService:
    return ColorizeService.from_env()


@st.cache_data(max_entries=16, show_spinner=False)
def animation(key: str, _gray, _color) -> tuple[bytes, list]:
    frames = blend_frames(_gray, _color)
    return gif_bytes(frames), frames


def main() -> None:
    st.set_page_config(page_title="colorize-rt", layout="wide")
    service = get_service()
    st.title("colorize-rt")
    st.caption(
        "Upload (or drag and drop) a photo; it is colorized with *Colorful Image Colorization* "
        "(Zhang, Isola & Efros, ECCV 2016). Colour photos are converted to gray first."
    )

    left, right = st.columns([1, 2])
    with left:
        upload = st.file_uploader("Image (click or drag and drop)", key="upload")
        method = st.radio("Method", METHODS, format_func=METHOD_LABELS.get, key="method")
        st.caption(service.backend_text(method))
        reference = None
        if method == "transfer":
            reference = st.file_uploader("Reference image (colours are taken from it)", key="reference")
        temperature = st.slider(
            "Temperature (live preview)",
            0.01,
            1.0,
            DEFAULT_T,
            0.01,
            key="temperature",
            help="annealed mean: 0.38 = the paper's default; lower = closer to the most likely colour, 1 = the mean",
            disabled=method == "transfer",
        )
        c1, c2 = st.columns(2)
        mode = c1.selectbox("Mode", MODES, key="mode")
        size = c2.slider("Network size", 64, 1024, DEFAULT_SIZE, 8, key="size")
        with st.expander("Hints and palette", expanded=False):
            hints_text = st.text_area(
                "Point hints",
                key="hints",
                placeholder="120,80,#c03020,8  (one X,Y,#RRGGBB[,RADIUS] per line, or a JSON list)",
                help="X, Y in the input image's pixels; the colour is carried along the object it lands on",
            )
            palette_text = st.text_input("Palette colours", key="palette", placeholder="#2266cc,#aa3311")
            palette_file = st.file_uploader("…or a palette photo (its colours)", key="palette_file")
        status = st.empty()

    res = None
    if upload is None:
        status.info("Upload an image to start.")
    else:
        try:
            hints = ui_hints(hints_text)
            palette = ui_palette(service, palette_text, palette_file.getvalue() if palette_file else None)
            with st.spinner("Colorizing…"):
                res = service.colorize(
                    upload.getvalue(),
                    method=method,
                    temperature=temperature,
                    mode=mode,
                    size=size,
                    reference=reference.getvalue() if reference else None,
                    hints=hints,
                    palette=palette,
                )
            status.success(status_line(res))
        except UserError as exc:
            status.error(f"Error: {exc}")
        except Overloaded as exc:
            status.warning(f"Busy: {exc} (about {exc.retry_after_s} s)")

    with right:
        if res is not None:
            tabs = st.tabs(["Result", "Side by side", "Blend", "Animation"])
            with tabs[0]:
                c_gray, c_color = st.columns(2)
                with c_gray.container(key="gray"):
                    st.image(res.gray, caption="Input (gray)", output_format="PNG", width=DISPLAY_WIDTH)
                with c_color.container(key="result"):
                    st.image(res.color, caption="Colorized", output_format="PNG", width=DISPLAY_WIDTH)
                st.download_button(
                    "Download (PNG, full resolution)",
                    res.png,
                    file_name="colorized.png",
                    mime="image/png",
                    key="download",
                )
            with tabs[1]:
                st.image(preview_side_by_side(res.gray, res.color), caption="Gray | colour", output_format="PNG")
            with tabs[2]:
                t = st.slider("Gray → colour", 0.0, 1.0, 0.5, 0.01, key="blend")
                st.image(blend(res.gray, res.color, t), caption=f"Blend {t:.0%}", output_format="PNG")
            with tabs[3]:
                gif, frames = animation(res.key, res.gray, res.color)
                st.image(gif, caption="Blend animation (GIF)")
                n = len(frames)
                picks = sorted({round(i * (n - 1) / 6) for i in range(7)})
                st.image([frames[i] for i in picks], caption=[f"{i / (n - 1):.0%}" for i in picks], width=96)
    st.divider()
    st.text(service.cache_text())


if __name__ == "__main__":  # streamlit runs the script as __main__; importing it (tests) only defines the helpers
    main()
