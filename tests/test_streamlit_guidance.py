"""The Streamlit app's hints and palette controls (issue 30), run by Streamlit's own app tester on the shipped model:
hints as lines or JSON and a palette as colours or a photo reach the service (a new result, not a cache hit), and
every bad one is a one-line error, as in the Gradio app and the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("streamlit", reason="pip install 'colorize-rt[serve]'")
from streamlit.testing.v1 import AppTest  # noqa: E402

from colorize_rt.serve import streamlit_app  # noqa: E402
from colorize_rt.serve.service import UserError  # noqa: E402

pytestmark = pytest.mark.timeout(300)
APP = str(Path(streamlit_app.__file__))


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def photo(sample_rgb) -> bytes:
    return _png(cv2.resize(sample_rgb["chelsea"], (160, 120), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module", autouse=True)
def fresh_service(tmp_path_factory):
    """One service for the module (Streamlit keeps it in-process), on the shipped model, with an empty result cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLORIZE_RT_MODEL", "default")
        mp.setenv("COLORIZE_RT_BACKEND", "cpu")
        mp.setenv("COLORIZE_RT_CACHE_DIR", str(tmp_path_factory.mktemp("streamlit-cache")))
        mp.setenv("REDIS_URL", "")
        streamlit_app.get_service.clear()
        yield
        streamlit_app.get_service.clear()


def _run(monkeypatch, photo: bytes, hints: str = "", palette: str = "", palette_photo: bytes | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.file_uploader(key="upload").upload("photo.png", photo, "image/png")
    at.text_area(key="hints").set_value(hints)
    at.text_input(key="palette").set_value(palette)
    if palette_photo is not None:
        at.file_uploader(key="palette_file").upload("palette.png", palette_photo, "image/png")
    at.run()
    assert not at.exception, at.exception
    return at


def _message(at: AppTest) -> tuple[str, str]:
    """(kind, text) of the status line."""
    for kind in ("error", "success", "warning"):
        items = getattr(at, kind)
        if len(items):
            return kind, items[0].value
    raise AssertionError("no status line")


def test_hints_and_palette_reach_the_service(monkeypatch, photo, sample_rgb):
    kind, plain = _message(_run(monkeypatch, photo))
    assert kind == "success"
    for guide in (
        {"hints": "20,30,#c03020,4\n100,60,#2266cc"},
        {"hints": json.dumps([{"x": 20, "y": 30, "color": "#c03020", "radius": 4}])},
        {"palette": "#2266cc,#aa3311"},
        {"palette_photo": _png(sample_rgb["coffee"][::4, ::4].copy())},
    ):
        kind, text = _message(_run(monkeypatch, photo, **guide))
        assert kind == "success" and "computed" in text, (guide, text)


@pytest.mark.parametrize(
    ("guide", "message"),
    [
        ({"hints": "20,30,#c03020\n500,30,#2266cc"}, "hint 1 at (500, 30) is outside the 160x120 image"),
        ({"hints": "20,30,#zz0000"}, "hints line 1: colour must be #rrggbb"),
        ({"hints": "20,30"}, "hints line 1: a hint is X,Y,#RRGGBB[,RADIUS]"),
        ({"hints": "20,30,#c03020,nan"}, "hints line 1:"),
        ({"hints": json.dumps([{"x": 1, "y": 1, "color": "#c03020"}] * 1001)}, "at most 1,000 hints"),
        ({"hints": "[{"}, "invalid JSON"),
        ({"palette": "#12345g"}, "colour must be #rrggbb"),
        ({"palette_photo": b"not an image"}, "palette image"),
        ({"palette_photo": _png(np.full((32, 32, 3), 128, np.uint8))}, "has no colour"),
    ],
)
def test_bad_hints_and_palettes_are_one_line(monkeypatch, photo, guide, message):
    kind, text = _message(_run(monkeypatch, photo, **guide))
    assert kind == "error" and message in text and "\n" not in text, text


def test_ui_hints_parses_lines_and_passes_json_on():
    hints = streamlit_app.ui_hints(" 10,20,#ff0000,3 \n\n30,40,#00ff00")
    assert [(h.x, h.y, h.radius) for h in hints] == [(10, 20, 3), (30, 40, 0)]
    assert streamlit_app.ui_hints("  ") is None
    assert streamlit_app.ui_hints('[{"x": 1}]') == '[{"x": 1}]'  # the service checks JSON (one line, as the API)
    with pytest.raises(UserError, match="hints line 2"):
        streamlit_app.ui_hints("1,2,#ff0000\n3,4,#ff00")
