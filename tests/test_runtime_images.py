"""Decoding every input kind the runtime promises, and atomic writing."""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from colorize_rt.core.color import rgb_to_l
from colorize_rt.runtime.pipeline.images import DecodedImage, ImageError, read_image, write_image
from colorize_rt.runtime.pipeline.modes import l_star
from tests.runtime_support import photo, write_rgb


@pytest.fixture(scope="module")
def rgb():
    return cv2.resize(photo("astronaut"), (96, 64), interpolation=cv2.INTER_AREA)


def test_png_jpg_webp_bmp_tiff_rgb(tmp_path, rgb):
    for ext, tol in [(".png", 0), (".bmp", 0), (".tiff", 0), (".webp", 40), (".jpg", 40)]:
        img = read_image(write_rgb(tmp_path / f"a{ext}", rgb))
        assert img.rgb.shape == (64, 96, 3) and img.rgb.dtype == np.uint8 and img.bit_depth == 8
        assert not img.gray and img.alpha is None
        assert np.abs(img.rgb.astype(int) - rgb).max() <= tol or np.abs(img.rgb.astype(int) - rgb).mean() < 4, ext


def test_16bit_png_and_tiff_keep_16_bits(tmp_path, rgb):
    rgb16 = rgb.astype(np.uint16) * 257 + np.arange(64 * 96 * 3, dtype=np.uint16).reshape(64, 96, 3) % 200
    for ext in (".png", ".tif"):
        img = read_image(write_rgb(tmp_path / f"a16{ext}", rgb16))
        assert img.bit_depth == 16 and img.rgb.dtype == np.uint16
        np.testing.assert_array_equal(img.rgb, rgb16)  # exact, incl. the low byte Pillow would drop
    g16 = read_image(write_rgb(tmp_path / "g16.png", rgb16[..., 0]))
    assert g16.bit_depth == 16 and g16.gray
    np.testing.assert_array_equal(g16.rgb[..., 2], rgb16[..., 0])


def test_rgba_alpha_kept_and_written(tmp_path, rgb):
    alpha = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (64, 1))
    img = read_image(write_rgb(tmp_path / "a.png", np.dstack([rgb, alpha])))
    np.testing.assert_array_equal(img.alpha, alpha)
    np.testing.assert_array_equal(img.rgb, rgb)
    out = read_image(write_image(img, tmp_path / "o.png"))
    np.testing.assert_array_equal(out.alpha, alpha)
    assert read_image(write_image(img, tmp_path / "o.jpg")).alpha is None  # JPEG has no alpha


def test_palette_and_palette_transparency(tmp_path, rgb):
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(img.rgb, np.asarray(pal.convert("RGB")))
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    img_t = read_image(tmp_path / "pt.png")
    assert img_t.alpha is not None and (img_t.alpha == 0).any() and (img_t.alpha == 255).any()


def test_cmyk_jpeg(tmp_path, rgb):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    img = read_image(tmp_path / "c.jpg")
    assert img.rgb.shape == (64, 96, 3) and not img.gray
    assert np.abs(img.rgb.astype(int) - rgb).mean() < 8


def test_exif_orientation_applied(tmp_path, rgb):
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=98)
    img = read_image(tmp_path / "r.jpg")
    assert img.rgb.shape == (96, 64, 3)
    expected = np.rot90(rgb, k=-1)
    assert np.abs(img.rgb.astype(int) - expected).mean() < 4


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(orientation, rgb):
    """Our array-level orientation (used for 16-bit files decoded by OpenCV) equals Pillow's."""
    from PIL import ImageOps

    from colorize_rt.runtime.pipeline.images import _orient

    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(_orient(rgb, orientation), expected)


def test_gray_la_and_one_by_one(tmp_path):
    g = np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) % 256
    Image.fromarray(g.astype(np.uint8)).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.gray and img.rgb.shape == (64, 96, 3) and (img.rgb[..., 0] == img.rgb[..., 2]).all()
    Image.fromarray(np.dstack([g, 255 - g]).astype(np.uint8), "LA").save(tmp_path / "la.png")
    la = read_image(tmp_path / "la.png")
    assert la.gray and la.alpha is not None and la.alpha[0, 0] == 255
    Image.new("RGB", (1, 1), (200, 10, 30)).save(tmp_path / "one.png")
    one = read_image(tmp_path / "one.png")
    assert one.rgb.shape == (1, 1, 3) and tuple(one.rgb[0, 0]) == (200, 10, 30)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_float_tiff_in_0_1_with_one_non_finite_pixel(tmp_path, rgb, bad):
    """Before: one inf pixel made the 0..1 image read as 0..255, so it decoded almost black."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    gray[3, 5] = bad
    Image.fromarray(gray, "F").save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.gray and img.rgb.dtype == np.uint8
    want = np.clip(np.nan_to_num(gray) * 255, 0, 255).round()
    keep = np.isfinite(gray)
    assert np.abs(img.rgb[..., 0].astype(float) - want)[keep].max() <= 1


def test_l_is_cie_lstar_not_scaled_gray(tmp_path):
    Image.new("L", (4, 4), 128).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    L = l_star(img.rgb, img.gray)
    assert L[0, 0] == pytest.approx(53.585, abs=0.01)  # CIE L* of sRGB 128; 128 * 100 / 255 would be 50.2
    rng = np.random.default_rng(0)
    for dtype, top in [(np.uint8, 255), (np.uint16, 65535)]:
        px = rng.integers(0, top + 1, (32, 32, 3)).astype(dtype)
        np.testing.assert_allclose(l_star(px), rgb_to_l(px.astype(np.float32) / top), atol=2e-3)


@pytest.mark.parametrize(
    "maker, needle",
    [
        (lambda p, d: p.write_bytes(b""), "empty file"),
        (lambda p, d: p.write_text("this is not an image\n"), "not a recognised image"),
        (lambda p, d: p.write_bytes(d[: len(d) // 2]), "cannot decode"),
        (
            lambda p, d: p.write_bytes(cv2.imencode(".tiff", np.full((8, 8, 3), 0.5, np.float32))[1].tobytes()),
            "a TIFF with a sample format this decoder cannot read (e.g. float RGB): save it as 8- or 16-bit",
        ),
    ],
    ids=["zero-byte", "text-named-png", "truncated", "float-rgb-tiff"],
)
def test_bad_files_raise_one_line_image_error(tmp_path, rgb, maker, needle):
    data = cv2.imencode(".png", rgb)[1].tobytes()
    bad = tmp_path / "bad.png"
    maker(bad, data)
    with pytest.raises(ImageError) as info:
        read_image(bad)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg and str(bad) in msg


def test_truncated_jpeg(tmp_path, rgb):
    data = cv2.imencode(".jpg", rgb)[1].tobytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cannot decode"):
        read_image(tmp_path / "t.jpg")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))  # 10 gigapixels declared in a ~100-byte file
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="decompression bomb.*--max-pixels"):
        read_image(bomb)
    assert time.perf_counter() - t0 < 1.0
    # a real (compressible) 3000x3000 image: refused under a 1 MP limit, decoded when the limit allows it
    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000), 90).save(big)
    with pytest.raises(ImageError, match="9 MP"):
        read_image(big, max_pixels=1_000_000)
    assert read_image(big, max_pixels=0).rgb.shape == (3000, 3000, 3)


def test_write_image_16bit_and_depth_reduction(tmp_path):
    yy, xx = np.mgrid[0:20, 0:30]
    rgb16 = np.dstack([xx * 2000 + 3, yy * 3000 + 7, (xx + yy) * 1300 + 11]).astype(np.uint16)
    img = DecodedImage(rgb=rgb16, bit_depth=16)
    back = read_image(write_image(img, tmp_path / "o.png"))
    assert back.bit_depth == 16
    np.testing.assert_array_equal(back.rgb, rgb16)
    j = read_image(write_image(img, tmp_path / "o.jpg"))
    assert j.bit_depth == 8 and np.abs(j.rgb.astype(int) - rgb16 / 257).mean() < 3


def test_write_is_atomic(tmp_path, monkeypatch):
    img = DecodedImage(rgb=np.zeros((8, 8, 3), np.uint8))
    target = tmp_path / "o.png"
    target.write_bytes(b"previous")

    def broken_imwrite(path, arr, params):
        with open(path, "wb") as fh:
            fh.write(b"half an image")
        raise RuntimeError("disk full")

    monkeypatch.setattr(cv2, "imwrite", broken_imwrite)
    with pytest.raises(RuntimeError):
        write_image(img, target)
    assert target.read_bytes() == b"previous"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]  # no temp file left behind
    with pytest.raises(ImageError, match="unsupported output format"):
        write_image(img, tmp_path / "o.xyz")
