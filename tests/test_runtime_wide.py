"""Panoramas wider (or taller) than OpenCV's remap limit of 32,767 pixels: chunked remaps, end to end."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from colorize_rt.core.color import rgb_to_lab
from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.pipeline import remap as remap_mod
from colorize_rt.runtime.pipeline.images import read_image
from tests.runtime_support import ROOT, photo, run_cli

DEFAULT = ROOT / "colorize_rt" / "assets" / "default.onnx"


def _panorama(width: int, height: int) -> np.ndarray:
    """A real photo's gray levels tiled into a long strip (8-bit gray)."""
    gray = cv2.cvtColor(photo(), cv2.COLOR_RGB2GRAY)
    strip = cv2.resize(gray, (gray.shape[1] * height // gray.shape[0], height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.tile(strip, (1, -(-width // strip.shape[1])))[:, :width])


def test_chunked_remap_equals_one_remap(monkeypatch):
    rng = np.random.default_rng(0)
    src = rng.normal(0, 40, (24, 31, 2)).astype(np.float32)
    my, mx = np.meshgrid(np.linspace(-1, 24, 700, dtype=np.float32), np.linspace(-1, 31, 900, dtype=np.float32), indexing="ij")
    whole = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    monkeypatch.setattr(remap_mod, "CV_MAX_SIDE", 500)
    monkeypatch.setattr(remap_mod, "CHUNK", 256)
    np.testing.assert_array_equal(remap_mod.remap(src, mx, my, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE), whole)
    pairs = rng.integers(0, 24, (700, 900, 2)).astype(np.int16)  # int16 (x, y) pairs, as the palette lookup uses
    table = rng.integers(0, 256, (24, 31, 3)).astype(np.uint8)
    out = np.zeros((700, 900, 3), np.uint8)
    got = remap_mod.remap(table, pairs, None, cv2.INTER_NEAREST, dst=out)
    assert got is out
    np.testing.assert_array_equal(out, table[pairs[..., 1], pairs[..., 0]])


def test_the_pipeline_in_chunks_gives_the_same_bytes(monkeypatch):
    """Every remap of fit mode (upsampling, the table path, the palette lookup) chunked vs whole."""
    image = read_image_from_array(_panorama(2600, 40))
    colorizer = Colorizer(model=str(DEFAULT), backend="cpu")
    whole = colorizer.colorize(image).rgb
    monkeypatch.setattr(remap_mod, "CV_MAX_SIDE", 1000)
    monkeypatch.setattr(remap_mod, "CHUNK", 384)
    np.testing.assert_array_equal(colorizer.colorize(image).rgb, whole)


def read_image_from_array(gray: np.ndarray):
    ok, png = cv2.imencode(".png", gray)
    assert ok
    return read_image(png.tobytes())


@pytest.mark.parametrize("mode", ["fit", "tiled"])
def test_a_40000_pixel_wide_panorama_is_colorized(tmp_path, mode):
    pano = _panorama(40_000, 24)
    src = tmp_path / "pano.png"
    cv2.imwrite(str(src), pano)
    out = tmp_path / "pano_color.png"
    res = run_cli(str(src), "-o", str(out), "--mode", mode, "-q")
    assert res.returncode == 0, res.stderr
    rgb = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert rgb.shape == (24, 40_000, 3)
    lab = rgb_to_lab(rgb.astype(np.float32) / 255)
    gray_l = rgb_to_lab(np.repeat(pano[..., None], 3, -1).astype(np.float32) / 255)[..., 0]
    assert np.abs(lab[..., 0] - gray_l).max() < 1.0  # L* kept everywhere, past column 32,767 too
    assert np.hypot(lab[..., 1], lab[..., 2])[:, 33_000:].mean() > 2  # and coloured there
