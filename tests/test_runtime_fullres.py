"""The full-resolution path (issue 14) and any aspect ratio (issue 17 item 5), on real photos and the
shipped model: the 8-bit table path against the float path it replaced, exact luminance, the saved ONNX
Runtime graph, panoramas and strips from the CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from colorize_rt.core.color import rgb_to_lab
from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.backends import ort_cache
from colorize_rt.runtime.pipeline.folder import Job, Options, run_batch
from colorize_rt.runtime.pipeline.images import DecodedImage, gray3, read_image
from colorize_rt.runtime.pipeline.modes import (
    TABLE_MIN_PIXELS,
    _source_coords,
    l_star,
    prepare_fit,
    recombine,
    recombine_bgr,
    upsample_rows,
    uses_table,
)
from tests.runtime_support import ROOT, photo, run_cli

DEFAULT_ONNX = ROOT / "colorize_rt" / "assets" / "default.onnx"
pytestmark = pytest.mark.skipif(not DEFAULT_ONNX.is_file(), reason="the shipped default model is not in this checkout")


def reference_recombine(image: DecodedImage, ab_lowres: np.ndarray) -> np.ndarray:
    """The float path as it was before the table path (issue 14): bilinear ab per pixel, OpenCV float
    Lab -> RGB, channels clipped."""
    H, W = image.height, image.width
    ab_hw2 = np.ascontiguousarray(np.moveaxis(ab_lowres, 0, -1).astype(np.float32))
    h, w = ab_hw2.shape[:2]
    out = np.empty((H, W, 3), image.rgb.dtype)
    top = 65535.0 if image.rgb.dtype == np.uint16 else 255.0
    for y0 in range(0, H, 256):
        y1 = min(H, y0 + 256)
        ab = upsample_rows(ab_hw2, _source_coords(H, h, y0, y1), _source_coords(W, w))
        lab = np.concatenate([l_star(image.rgb[y0:y1], image.gray)[..., None], ab], axis=-1).astype(np.float32)
        rgb = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
        out[y0:y1] = (rgb * top + 0.5).astype(image.rgb.dtype)
    return out


@pytest.fixture(scope="module")
def colorizer():
    with Colorizer("default", backend="cpu") as c:
        yield c


def gray_photo(kind: str, w: int, h: int, depth: int = 8) -> DecodedImage:
    src = photo(kind)
    g = cv2.resize(src if src.ndim == 2 else cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), (w, h), interpolation=cv2.INTER_CUBIC)
    if depth == 16:
        g = g.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, g.shape).astype(np.uint16)
    return DecodedImage(rgb=gray3(g), gray=True, bit_depth=depth)


def lightness(rgb: np.ndarray) -> np.ndarray:
    top = 65535.0 if rgb.dtype == np.uint16 else 255.0
    return rgb_to_lab(rgb.astype(np.float32) / top)[..., 0]


@pytest.mark.parametrize(("kind", "w", "h"), [("astronaut", 1600, 1200), ("coffee", 1203, 999), ("chelsea", 1500, 1000)])
def test_table_path_matches_the_float_path(colorizer, kind, w, h, record_property):
    image = gray_photo(kind, w, h)
    assert uses_table(image)
    ab = colorizer.infer_fit(prepare_fit(image, 256))
    new = recombine(image, ab).rgb
    ref = reference_recombine(image, ab)
    diff = np.abs(new.astype(int) - ref.astype(int))
    # Where clipping changed the reference's lightness, the new path reduces chroma instead (L* kept), so
    # it differs there by design; elsewhere the difference is the rounding of ab to integers.
    ref_kept = np.abs(lightness(ref) - l_star(image.rgb, True)) <= 0.3
    record_property("mean_abs_drgb", float(diff.mean()))
    record_property("reference_lightness_broken", float(1 - ref_kept.mean()))
    assert new.shape == ref.shape and new.dtype == np.uint8
    assert diff.mean() <= 1.0
    assert diff[ref_kept].mean() <= 0.5 and np.percentile(diff[ref_kept], 99) <= 1
    assert np.array_equal(recombine_bgr(image, ab), new[..., ::-1])


@pytest.mark.parametrize(("w", "h", "depth"), [(1600, 1200, 8), (1203, 999, 8), (300, 200, 8), (320, 240, 16)])
def test_ab_zero_returns_the_input_gray_exactly(w, h, depth):
    image = gray_photo("camera", w, h, depth)
    out = recombine(image, np.zeros((2, 48, 64), np.float32)).rgb
    assert out.dtype == image.rgb.dtype
    assert np.array_equal(out, np.broadcast_to(image.rgb[..., :1], out.shape))


@pytest.mark.parametrize(("w", "h", "depth"), [(1600, 1200, 8), (300, 200, 8), (320, 240, 16)])
def test_lightness_kept_within_half_a_unit_even_out_of_gamut(w, h, depth):
    """Saturated ab everywhere (most of it outside sRGB at some L*): chroma is reduced, L* is kept."""
    image = gray_photo("astronaut", w, h, depth)
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    ab = np.stack([90 * np.sin(xx / 5), 90 * np.cos(yy / 4)]).astype(np.float32)
    out = recombine(image, ab).rgb
    err = np.abs(lightness(out) - l_star(image.rgb, True))
    assert err.max() <= 0.5
    assert (out.astype(int).max(-1) - out.astype(int).min(-1)).mean() > 20  # and it is colourful


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_float_path_gives_a_pixel_the_same_output_whatever_the_image_size(dtype):
    """OpenCV's conversion for every size: a 256² photo's pixels are those of the same colours in a 12 MP one,
    in strips of any height (before, images under 100,000 pixels took other formulas and other bytes)."""
    from colorize_rt.runtime.pipeline.compose import lab_to_pixels

    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (300, 400)).astype(np.float32)
    ab = rng.uniform(-110, 110, (300, 400, 2)).astype(np.float32)  # much of it outside sRGB
    ab[::7, ::5] = 0  # neutral pixels
    whole = lab_to_pixels(L, ab, dtype)
    for rows in (1, 7, 256):
        parts = [lab_to_pixels(L[y : y + rows], ab[y : y + rows], dtype) for y in range(0, 300, rows)]
        assert np.array_equal(np.concatenate(parts), whole)
    top = 65535.0 if dtype == np.uint16 else 255.0
    assert np.abs(rgb_to_lab(whole.astype(np.float32) / top)[..., 0] - L).max() <= 0.5  # L* kept, out of gamut too


def test_colour_input_keeps_its_lightness(colorizer):
    rgb = cv2.resize(photo("coffee"), (640, 480))
    image = DecodedImage(rgb=rgb)
    out = recombine(image, colorizer.infer_fit(prepare_fit(image, 256))).rgb
    assert np.abs(lightness(out) - l_star(rgb)).max() <= 0.5


def test_cli_colorizes_a_big_gray_jpeg_like_the_api(tmp_path, colorizer):
    """The batch writes the table path's BGR straight to the encoder: same pixels as the API."""
    g = cv2.cvtColor(cv2.resize(photo("astronaut"), (1280, 960)), cv2.COLOR_RGB2GRAY)
    src = tmp_path / "big.png"
    cv2.imwrite(str(src), g)
    image = read_image(src)
    assert image.gray and image.rgb.shape == (960, 1280, 3) and image.height * image.width >= TABLE_MIN_PIXELS
    summary = run_batch([Job(src, tmp_path / "out.png")], colorizer, Options(), report=print, progress=False)
    assert summary.done == 1 and summary.failed == 0
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(written, colorizer.colorize(image).rgb)


@pytest.mark.parametrize(
    ("mode", "wh"),
    [("fit", (1000, 80)), ("fit", (3, 5000)), ("fit", (5000, 3)), ("fit", (1, 1)), ("tiled", (1000, 80)), ("tiled", (3, 5000))],
)
def test_panoramas_and_strips_colorize_from_the_cli(tmp_path, mode, wh):
    w, h = wh
    g = cv2.resize(cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2GRAY), (w, h), interpolation=cv2.INTER_AREA)
    src = tmp_path / f"strip_{w}x{h}.png"
    cv2.imwrite(str(src), g)
    out = tmp_path / "out.png"
    r = run_cli(str(src), "-o", str(out), "--mode", mode, "--backend", "cpu", "--tile", "64", "--overlap", "16")
    assert r.returncode == 0, r.stderr
    assert "onnxruntime" not in r.stderr.lower() and "invalid input" not in r.stderr.lower()
    colour = cv2.imread(str(out))
    assert colour.shape == (h, w, 3)
    assert np.abs(lightness(colour[..., ::-1]) - l_star(gray3(g), True)).max() <= 0.5


def test_network_errors_are_one_line_without_onnxruntime_text(tmp_path, colorizer):
    """Whatever the network raises, the user sees one line naming the file, not ONNX Runtime's text."""
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.full((40, 60), 128, np.uint8))

    class Broken:
        method = "classification"

        def prepare_fit(self, image, size):
            return colorizer.prepare_fit(image, size)

        def infer_fit(self, L, temperature=None):  # a real ONNX Runtime failure: a 2-D input to a 4-D graph
            return colorizer.runner.session.run(None, {"L": L.astype(np.float32), "temperature": np.array(0.38, np.float32)})

    said: list[str] = []
    summary = run_batch([Job(src, tmp_path / "o.png")], Broken(), Options(), report=said.append, progress=False)
    assert summary.failed == 1 and len(said) == 1 and "\n" not in said[0]
    assert str(src) in said[0] and "network could not run" in said[0]
    assert not any(word in said[0].lower() for word in ("rank", "expected", "dimension", "index:"))


def test_optimised_graph_is_saved_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path / "cache"))
    feed = {"L": np.linspace(0, 100, 64 * 96, dtype=np.float32).reshape(1, 1, 64, 96), "temperature": np.array(0.38, np.float32)}
    first = ort_cache.cpu_session(DEFAULT_ONNX)
    saved = ort_cache.optimized_path(DEFAULT_ONNX)
    assert saved.is_file() and saved.parent == tmp_path / "cache" / "ort-optimized"
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]  # no temp file left
    mtime = saved.stat().st_mtime_ns
    second = ort_cache.cpu_session(DEFAULT_ONNX)
    assert saved.stat().st_mtime_ns == mtime  # reused, not rewritten
    np.testing.assert_array_equal(first.run(None, feed)[0], second.run(None, feed)[0])
    assert dict(second.get_modelmeta().custom_metadata_map) == dict(first.get_modelmeta().custom_metadata_map)

    saved.write_bytes(b"not an onnx graph")  # a damaged entry is replaced
    third = ort_cache.cpu_session(DEFAULT_ONNX)
    np.testing.assert_array_equal(third.run(None, feed)[0], first.run(None, feed)[0])
    assert saved.stat().st_size > 1000


def test_optimised_graph_key_and_opt_out(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path))
    import onnxruntime as ort

    name = ort_cache.optimized_path(DEFAULT_ONNX).name
    assert ort.__version__ in name and name.startswith("default-")
    copy = tmp_path / "default.onnx"
    copy.write_bytes(DEFAULT_ONNX.read_bytes()[:-1] + b"\0")  # another model: another key
    assert ort_cache.optimized_path(copy).name != name
    for mode in ("0", "read"):
        monkeypatch.setenv("COLORIZE_RT_ORT_CACHE", mode)
        ort_cache.cpu_session(DEFAULT_ONNX)
        assert not (tmp_path / "ort-optimized").exists()


def test_unusable_cache_folder_still_opens(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(blocker / "cache"))  # mkdir fails, even for root
    assert ort_cache.cpu_session(DEFAULT_ONNX).get_inputs()[0].name == "L"
    assert blocker.read_text() == "not a folder"


def test_table_rows_are_saved_checked_and_reused(tmp_path, monkeypatch):
    from colorize_rt.runtime.pipeline import compose

    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path))
    pairs = np.array([(128 + a) * 256 + (128 + b) for a, b in [(0, 0), (10, -5), (40, 60), (-90, 100)]])
    first = compose._GrayTable(persist=True)
    first.ensure(pairs)
    saved = compose.table_file()
    assert saved.is_file() and saved.parent == tmp_path / "srgb-table"
    second = compose._GrayTable(persist=True)
    second.ensure(pairs[:1])  # loads the file: every saved row is there without being computed
    assert second.built[pairs].all() and np.array_equal(second.rows[pairs], first.rows[pairs])
    fresh = compose._GrayTable(persist=False)
    fresh.ensure(pairs)
    assert np.array_equal(fresh.rows[pairs], first.rows[pairs])

    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the rows: the checksum catches it
    saved.write_bytes(bytes(data))
    third = compose._GrayTable(persist=True)
    third.ensure(pairs[:1])
    assert not third.built[pairs[1:]].any()  # nothing loaded from the damaged file
    third.ensure(pairs)
    assert np.array_equal(third.rows[pairs], first.rows[pairs])
