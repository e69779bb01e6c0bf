"""Hints and palettes through the service and the HTTP API (issue 30): real sessions of the shipped default model,
the real FastAPI app; they change the result and the cache key, and every bad one is a one-line 400."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest

from colorize_rt.runtime.guidance.spec import PointHint
from colorize_rt.serve.cache import DiskCache, ResultCache
from colorize_rt.serve.service import ColorizeService, UserError
from tests.serve_support import sample_png

pytest.importorskip("skimage", reason="sample photos come from scikit-image (the [dev] extra)")
pytestmark = pytest.mark.timeout(300)

HINTS = [{"x": 20, "y": 30, "color": "#c03020", "radius": 4}, {"x": 90, "y": 90, "color": "#2050e0"}]


@pytest.fixture
def service(tmp_path):
    return ColorizeService(model="default", cache=ResultCache(DiskCache(tmp_path / "cache")))


def test_hints_and_palette_change_the_result_and_the_key(service):
    png = sample_png(128)
    plain = service.colorize(png, size=128)
    hinted = service.colorize(png, size=128, hints=json.dumps(HINTS))
    paletted = service.colorize(png, size=128, palette="#2050e0")
    assert len({plain.key, hinted.key, paletted.key}) == 3 and not hinted.cached and not paletted.cached
    assert not np.array_equal(plain.color, hinted.color) and not np.array_equal(plain.color, paletted.color)
    again = service.colorize(png, size=128, hints=HINTS)  # parsed JSON or text: the same hints, the same key
    assert again.cached and again.key == hinted.key
    moved = service.colorize(png, size=128, hints=[{**HINTS[0], "x": 21}, HINTS[1]])
    assert moved.key != hinted.key
    assert service.colorize(png, size=128, hints=[PointHint(20, 30, (50.0, 40.0), 4)]).key != hinted.key
    assert service.colorize(png, size=128, hints="", palette=None).key == plain.key  # none given: today's key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hints": json.dumps([{"x": 999, "y": 1, "color": "#000000"}])}, "outside the 96x96 image"),
        ({"hints": '[{"x": 1, "y": 1, "color": "#00000"}]'}, "colour must be #rrggbb"),
        ({"hints": '[{"x": 1, "y": 1, "color": "#000000", "radius": NaN}]'}, "hint radius must be a number"),
        ({"hints": json.dumps([{"x": 1, "y": 1, "color": "#000000"}] * 1001)}, "at most 1,000 hints"),
        ({"hints": "not json"}, "invalid JSON"),
        ({"palette": " , "}, "the palette is empty"),
        ({"palette": "#12"}, "colour must be #rrggbb"),
        ({"palette": "#2050e0", "method": "l2"}, "no 313-bin 'logits' output"),
    ],
)
def test_bad_hints_and_palettes_are_user_errors(service, kwargs, message):
    with pytest.raises(UserError, match=message) as exc:
        service.colorize(sample_png(96), size=96, **kwargs)
    assert exc.value.status == 400 and "\n" not in str(exc.value)


def test_http_api_takes_hints_and_palette(service):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from colorize_rt.serve.http_api import create_api

    client = TestClient(create_api(service))
    png = sample_png(96)
    q = urllib.parse.urlencode({"size": 96, "hints": json.dumps(HINTS[:1]), "palette": "#2050e0,#c03020"})
    ok = client.post(f"/api/colorize?{q}", content=png)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    plain = client.post("/api/colorize?size=96", content=png)
    assert plain.headers["X-Key"] != ok.headers["X-Key"]
    for bad, message in [
        ({"hints": json.dumps([{"x": 500, "y": 1, "color": "#000000"}])}, "outside the 96x96 image"),
        ({"hints": '[{"x": 1, "y": 1, "color": "blue"}]'}, "colour must be #rrggbb"),
        ({"palette": ""}, "the palette is empty"),
    ]:
        r = client.post(f"/api/colorize?{urllib.parse.urlencode(bad)}", content=png)
        assert r.status_code == 400, r.text
        assert message in r.json()["error"] and "\n" not in r.json()["error"]


def test_gradio_ui_builds_with_hint_controls(service):
    """The UI builds with the hint controls wired (click -> hint -> colorize; undo; clear; palette), and its hint
    helpers give what the service takes."""
    pytest.importorskip("gradio", reason="pip install 'colorize-rt[serve]'")
    from types import SimpleNamespace

    from colorize_rt.serve import gradio_app as ui

    demo = ui.build_blocks(service)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"hint-colour", "hint-radius", "hint-undo", "hint-clear", "hints", "palette", "palette-file"} <= ids
    hints, text = ui.add_hint([], "rgba(192, 48, 32, 1)", 6, SimpleNamespace(index=[20, 30]))
    hints, text = ui.add_hint(hints, "#2050e0", 0, SimpleNamespace(index=[90, 90]))
    assert hints == [{"x": 20, "y": 30, "color": "#c03020", "radius": 6.0}, {"x": 90, "y": 90, "color": "#2050e0", "radius": 0.0}]
    assert text.startswith("2 hint(s)")
    assert ui.undo_hint(hints)[0] == hints[:1] and ui.clear_hints()[0] == []
    png = sample_png(128)
    res = service.colorize(png, size=128, hints=hints, palette=ui.ui_palette(service, " #2050e0 ", None))
    assert res.key == service.colorize(png, size=128, hints=json.dumps(hints), palette="#2050e0").key
    assert ui.ui_palette(service, "", None) is None
    with pytest.raises(UserError, match="palette image"):
        ui.ui_palette(service, "", b"not an image")
