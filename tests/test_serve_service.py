"""The service layer both UIs share: real ONNX Runtime sessions, real image bytes, real disk cache."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from colorize_rt.runtime.backends.registry import CPU_BACKENDS
from colorize_rt.serve.cache import DiskCache, ResultCache
from colorize_rt.serve.service import (
    ColorizeService,
    UserError,
    blend,
    blend_frames,
    gif_bytes,
    preview_side_by_side,
)
from tests.runtime_support import ROOT
from tests.serve_support import mean_chroma, sample_png

pytest.importorskip("torch", reason="the test model is exported with torch (the [train] extra)")
pytest.importorskip("skimage", reason="sample photos come from scikit-image (the [dev] extra)")


@pytest.fixture(scope="module")
def model(tiny_onnx):
    return tiny_onnx


@pytest.fixture
def service(model, tmp_path):
    return ColorizeService(model=str(model), cache=ResultCache(DiskCache(tmp_path / "cache")))


def test_colorize_returns_coloured_result_and_caches(service, model):
    png = sample_png(96)
    res = service.colorize(png, temperature=0.38, size=64)
    assert res.color.shape == res.gray.shape == (96, 96, 3) and res.color.dtype == np.uint8
    assert mean_chroma(res.gray) < 1.0 < 3.0 < mean_chroma(res.color)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(res.png)))[..., :3], res.color)
    assert not res.cached and res.backend in CPU_BACKENDS  # auto: the CPU runtime measured fastest here
    again = service.colorize(png, temperature=0.38, size=64)
    assert again.cached and again.key == res.key and np.array_equal(again.color, res.color)
    hotter = service.colorize(png, temperature=1.0, size=64)
    assert not hotter.cached and hotter.key != res.key
    # T reaches the graph. (Not "less saturated": the tiny random model's colours are far outside sRGB at both
    # temperatures, and the lightness-keeping gamut mapping puts both on the same gamut boundary.)
    assert not np.array_equal(hotter.color, res.color)
    c = service.cache.counters
    assert (c["hits"], c["misses"]) == (1, 2)
    assert "this process 1 / 3 (33%)" in service.cache_text()
    assert f"backend: {res.backend}" in service.backend_text() and model.name in service.backend_text()


def test_tiled_mode_and_transfer(service):
    png = sample_png(96)
    tiled = service.colorize(png, mode="tiled", size=64)
    assert tiled.color.shape == (96, 96, 3) and tiled.key != service.colorize(png, size=64).key
    ref = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(ref, "PNG")
    moved = service.colorize(png, method="transfer", reference=ref.getvalue())
    assert moved.backend == "none" and mean_chroma(moved.color) > 3.0
    r, g, b = moved.color.reshape(-1, 3).mean(0)
    assert r > g and r > b  # a red reference makes the picture red
    ref2 = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 40, 200)).save(ref2, "PNG")
    assert service.colorize(png, method="transfer", reference=ref2.getvalue()).key != moved.key


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"hello, not an image", {}, "the image is not a usable image: not a recognised image file"),
        (b"", {}, "no image uploaded"),
        (None, {"method": "transfer"}, "no reference image uploaded"),
        (None, {"mode": "zoom"}, "unknown mode 'zoom'"),
        (None, {"method": "sepia"}, "unknown method 'sepia'"),
    ],
)
def test_user_errors_are_one_line(service, data, kwargs, message):
    with pytest.raises(UserError, match="^" + message) as info:
        service.colorize(sample_png(32) if data is None else data, **kwargs)
    assert "\n" not in str(info.value)


def test_upload_size_limit(model, tmp_path):
    small = ColorizeService(model=str(model), cache=ResultCache(DiskCache(tmp_path)), max_upload_mb=0.01)
    with pytest.raises(UserError, match=r"the image is [\d,]+ bytes; the upload limit is 0.01 MB \(10,485 bytes\)"):
        small.colorize(sample_png(256))


def test_missing_model_is_the_servers_fault_503(tmp_path):
    from colorize_rt.serve.service import ModelUnavailable

    svc = ColorizeService(model=str(tmp_path / "nope.onnx"), cache=ResultCache(DiskCache(tmp_path)))
    with pytest.raises(ModelUnavailable, match="the server's model cannot be used: model file not found") as info:
        svc.colorize(sample_png(32))
    assert info.value.status == 503
    assert svc.backend_text().startswith("backend: unavailable (the server's model cannot be used: model file not found")


def test_32_concurrent_identical_requests_compute_once(service):
    engine = service.engine("classification")
    calls = []
    real = engine.colorize

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    engine.colorize = counting
    pngs = [sample_png(64), sample_png(80)]
    barrier = threading.Barrier(32)
    results, errors = [], []

    def worker(i):
        barrier.wait()
        try:
            results.append(service.colorize(pngs[i % 2], size=64))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 32
    assert len(calls) == 2  # one network run per distinct request
    assert sum(not r.cached for r in results) == 2
    assert len({r.key for r in results}) == 2


def test_blend_frames_gif_and_side_by_side():
    gray = np.full((40, 60, 3), 100, np.uint8)
    color = np.zeros((40, 60, 3), np.uint8)
    color[..., 0] = 200
    assert np.array_equal(blend(gray, color, 0.0), gray) and np.array_equal(blend(gray, color, 1.0), color)
    assert blend(gray, color, 0.5)[0, 0].tolist() == [150, 50, 50]
    frames = blend_frames(gray, color, n=8)
    assert len(frames) == 8 and np.array_equal(frames[0], gray) and np.array_equal(frames[-1], color)
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.format == "GIF" and gif.n_frames == 14 and gif.info["loop"] == 0  # ping-pong 8 + 6
    gif.seek(7)
    assert np.asarray(gif.convert("RGB"))[0, 0, 0] > 150  # the colour end
    big = blend_frames(np.zeros((800, 400, 3), np.uint8), np.zeros((800, 400, 3), np.uint8), max_side=384)
    assert big[0].shape == (384, 192, 3)
    sbs = preview_side_by_side(gray, color, gap=8)
    assert sbs.shape == (40, 128, 3) and (sbs[:, 60:68] == 255).all()


def test_serve_code_never_imports_torch(model, tmp_path):
    code = (
        "import sys, os; os.environ['COLORIZE_RT_CACHE_DIR'] = sys.argv[2];"
        "from colorize_rt.serve.service import ColorizeService;"
        "from tests.serve_support import sample_png;"
        "from colorize_rt.serve.gradio_app import create_app;"
        "s = ColorizeService(model=sys.argv[1]); s.colorize(sample_png(32)); create_app(s);"
        "print('torch' in sys.modules)"
    )
    cmd = [sys.executable, "-c", code, str(model), str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
