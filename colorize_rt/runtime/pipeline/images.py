"""Image I/O for the runtime: decode anything Pillow knows into a small ``DecodedImage``, write atomically.

Reading: png/jpg/webp/tiff/bmp (and whatever else Pillow opens); 8- and 16-bit; gray, RGB, RGBA (alpha
kept), palette, CMYK; the EXIF orientation is applied. The canvas size declared in the header is checked
against ``max_pixels`` *before* any pixel is decoded (decompression-bomb guard). Pillow keeps 16-bit
colour as 8-bit, so 16-bit colour files are decoded with OpenCV instead.

Writing: format from the extension through OpenCV; 16-bit is kept where the format allows (png, tiff),
alpha where it allows (png, tiff, webp); always through ``atomic_path`` so a killed run never leaves a
partial file under the final name.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ...core.atomic import atomic_path
from ...core.files import IMAGE_EXTS

DEFAULT_MAX_PIXELS = 200_000_000
_SIXTEEN_BIT_EXTS = {".png", ".tif", ".tiff"}
_ALPHA_EXTS = {".png", ".tif", ".tiff", ".webp"}

# read_image enforces its own limit (``max_pixels``) from the header, so Pillow's global bomb check
# (a warning above 89 MP, an error above 179 MP) is switched off: it would refuse what the user allowed.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An input that cannot be used (unreadable, truncated, too large); the message is one line."""


@dataclass
class DecodedImage:
    """Pixels as decoded: ``rgb`` (H, W, 3) uint8 or uint16 (gray inputs: a read-only view of one plane,
    see ``gray3``), optional ``alpha`` (H, W) of the same dtype, ``bit_depth`` 8 or 16, ``source`` (path
    or name), ``gray`` if the input had no colour channels."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    source: str = "<memory>"
    gray: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def max_value(self) -> int:
        return 65535 if self.bit_depth == 16 else 255

    def with_rgb(self, rgb: np.ndarray) -> DecodedImage:
        return replace(self, rgb=rgb, gray=False)


def _name(src) -> str:
    return str(src) if isinstance(src, (str, Path)) else "<bytes>"


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, ...) array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(arr)) if op else arr


def gray3(plane: np.ndarray) -> np.ndarray:
    """A gray plane (H, W) as the (H, W, 3) ``rgb`` of a ``DecodedImage``: a read-only view of the one
    plane (no copy; ``rgb[..., 0]`` is the plane itself)."""
    return np.broadcast_to(plane[..., None], (*plane.shape, 3))


def _unrecognised(data: bytes) -> str:
    """Why Pillow could not identify ``data``: a TIFF it cannot read (e.g. 3-channel float or 32-bit samples)
    is named as such, so the fix is clear."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF with a sample format this decoder cannot read (e.g. float RGB): save it as 8- or 16-bit"
    return "not a recognised image file"


def _is_16bit(im: Image.Image) -> bool:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return True
    return any(";16" in str(getattr(t, "args", t)) for t in (im.tile or []))


def _from_pillow(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """Decode a Pillow image into (rgb, alpha, bit_depth, gray)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        g = np.asarray(im)
        if mode == "I":
            g = np.clip(g, 0, 65535)
        g = g.astype(np.uint16)
        return gray3(g), None, 16, True
    if mode == "F":
        g = np.asarray(im, dtype=np.float32)
        finite = g[np.isfinite(g)]  # one inf pixel must not decide the scale of all the others
        scale = 255.0 if float(finite.max(initial=0.0)) <= 1.0 else 1.0
        g = np.clip(np.nan_to_num(g) * scale, 0, 255).round().astype(np.uint8)
        return gray3(g), None, 8, True
    if mode == "P":
        has_alpha = "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA"
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("1", "L", "LA"):
        arr = np.asarray(im.convert("LA") if mode == "LA" else im.convert("L"))
        g = arr[..., 0] if mode == "LA" else arr
        alpha = np.ascontiguousarray(arr[..., 1]) if mode == "LA" else None
        return gray3(g), alpha, 8, True
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(im.convert("RGBA") if mode == "RGBa" else im)
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3]), 8, False
    if mode != "RGB":  # CMYK, YCbCr, LAB, HSV, RGBX ...
        im = im.convert("RGB")
    return np.asarray(im), None, 8, False


def _from_opencv(data: bytes) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """16-bit colour (Pillow would truncate it): decode with OpenCV, BGR(A) -> RGB(A)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        raise ImageError("OpenCV could not decode the 16-bit image")
    depth = 16 if arr.dtype == np.uint16 else 8
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported sample type {arr.dtype}")
    if arr.ndim == 2:
        return gray3(arr), None, depth, True
    c = arr.shape[2]
    if c == 1:
        return gray3(arr[..., 0]), None, depth, True
    if c == 2:
        return gray3(arr[..., 0]), np.ascontiguousarray(arr[..., 1]), depth, True
    rgb = np.ascontiguousarray(arr[..., 2::-1])
    alpha = np.ascontiguousarray(arr[..., 3]) if c == 4 else None
    return rgb, alpha, depth, False


# Formats whose extra frames are separate pictures: refused rather than silently keeping frame 1. (MPO, the
# multi-picture JPEG many cameras write, is not listed: its first frame is the photo, the rest previews.)
_MULTI_FRAME = {
    "GIF": ("animated GIF", "frames", "ffmpeg -i in.gif frame%03d.png"),
    "PNG": ("animated PNG", "frames", "ffmpeg -i in.png frame%03d.png"),
    "WEBP": ("animated WebP", "frames", "ffmpeg -i in.webp frame%03d.png"),
    "TIFF": ("multi-page TIFF", "pages", "tiffsplit in.tif page-"),
}
LIMIT_HINT = "raise --max-pixels to allow it"


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, before any pixel is decoded: ``width``, ``height``, ``bit_depth`` (8/16),
    ``channels`` (1 gray, 3 colour, 4 with alpha) and the Pillow ``format``."""

    width: int
    height: int
    bit_depth: int
    channels: int
    format: str | None

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _check_header(im: Image.Image, max_pixels: int | None, limit_hint: str) -> ImageHeader:
    """Canvas limit (decompression-bomb guard), empty canvas and multi-frame checks on an opened image."""
    w, h = im.size
    if max_pixels and max_pixels > 0 and w * h > max_pixels:
        raise ImageError(
            f"declares a {w}x{h} canvas ({w * h / 1e6:.0f} MP), over the {max_pixels / 1e6:g} MP limit "
            f"(possible decompression bomb); {limit_hint}"
        )
    if w < 1 or h < 1:
        raise ImageError(f"empty canvas {w}x{h}")
    if im.format in _MULTI_FRAME and getattr(im, "is_animated", False):
        kind, unit, how = _MULTI_FRAME[im.format]
        raise ImageError(
            f"is {'an' if kind[0] in 'aeiou' else 'a'} {kind} ({getattr(im, 'n_frames', '?')} {unit}); "
            f"only single still images are colorized: extract the one you want first (e.g. {how})"
        )
    bands = len(im.getbands()) if im.mode != "P" else 4 if "transparency" in im.info else 3
    return ImageHeader(w, h, 16 if _is_16bit(im) else 8, bands, im.format)


def image_header(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, limit_hint: str = LIMIT_HINT) -> ImageHeader:
    """Read and check the header of encoded image bytes without decoding pixels (cheap, bounded).

    Args:
        data: the encoded image.
        max_pixels: canvas limit (None or <= 0: no limit).
        limit_hint: how the user raises the limit, appended to the over-limit message.

    Returns:
        The :class:`ImageHeader`.

    Raises:
        ImageError: not an image, over the limit, empty, or several frames/pages (one line).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return _check_header(im, max_pixels, limit_hint)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(_unrecognised(data)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"cannot decode ({msg})") from None


def _gray_jpeg(im: Image.Image, data: bytes) -> np.ndarray | None:
    """A complete 8-bit gray JPEG decoded by OpenCV (faster than Pillow, no copy to three planes); None
    for anything else, or a file without its end marker (Pillow then reports the truncation)."""
    if im.format != "JPEG" or im.mode != "L" or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)


def _decode(im: Image.Image, data: bytes, sixteen: bool) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """Pixels of an opened image: (rgb, alpha, bit_depth, gray)."""
    if sixteen and im.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _from_opencv(data)
    g = _gray_jpeg(im, data)
    if g is not None:
        return gray3(g), None, 8, True
    im.load()
    return _from_pillow(im)


def read_image(path_or_bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, limit_hint: str = LIMIT_HINT) -> DecodedImage:
    """Decode a file path or encoded bytes. Raises ``ImageError`` (one-line message) for bad input.

    ``max_pixels`` (None or <= 0: no limit) is checked against the header before decoding; ``limit_hint``
    (how this entry point raises the limit) ends the over-limit message. Animated GIF/PNG/WebP and
    multi-page TIFF files are refused with a message (only frame 1 would be colorized otherwise).
    """
    name = _name(path_or_bytes)
    head = b""  # the first bytes, to say what an unidentified file is
    try:
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
        else:
            p = Path(path_or_bytes)
            if not p.exists():
                raise ImageError("no such file")
            if p.is_dir():
                raise ImageError("is a folder, not an image")
            data = p.read_bytes()
        if not data:
            raise ImageError("empty file (0 bytes)")
        head = data[:4]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Truncated File Read" / palette-transparency warnings
            with Image.open(io.BytesIO(data)) as im:
                # before getexif(): for PNG it loads the pixels and drops the tiles _is_16bit reads
                sixteen = _check_header(im, max_pixels, limit_hint).bit_depth == 16
                orientation = 1
                try:
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                except Exception:  # noqa: BLE001 - a broken EXIF block must not stop decoding
                    orientation = 1
                fmt = im.format
                rgb, alpha, depth, gray = _decode(im, data, sixteen)
        del data
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: {_unrecognised(head)}") from None
    except Image.DecompressionBombError as exc:  # not reached with MAX_IMAGE_PIXELS = None; kept as a guard
        raise ImageError(f"{name}: {exc}; {limit_hint}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{name}: cannot decode ({msg})") from None
    if gray:  # one plane, oriented and kept as a view (3x less memory and copying than three planes)
        rgb = gray3(_orient(np.ascontiguousarray(rgb[..., 0]), orientation))
    else:
        rgb = np.ascontiguousarray(_orient(rgb, orientation))
    alpha = _orient(alpha, orientation) if alpha is not None else None
    return DecodedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=depth,
        source=name,
        gray=gray,
        meta={"format": fmt, "orientation": orientation},
    )


def to_bgr_for_write(image: DecodedImage, ext: str) -> np.ndarray:
    """The array OpenCV should write for ``ext``: depth and alpha reduced to what the format supports."""
    rgb, alpha = image.rgb, image.alpha
    keep16 = image.bit_depth == 16 and ext in _SIXTEEN_BIT_EXTS
    if rgb.dtype == np.uint16 and not keep16:
        rgb = (rgb.astype(np.uint32) * 255 + 32767) // 65535
        rgb = rgb.astype(np.uint8)
        alpha = None if alpha is None else ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if image.gray and alpha is None:
        return np.ascontiguousarray(rgb[..., 0])
    if alpha is not None and ext in _ALPHA_EXTS:
        return cv2.cvtColor(np.dstack([rgb, alpha.astype(rgb.dtype)]), cv2.COLOR_RGBA2BGRA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def write_image(image: DecodedImage, path: str | Path, *, quality: int = 95) -> Path:
    """Write ``image`` atomically; the format follows the extension. Returns the path."""
    path = Path(path)
    return write_bgr(to_bgr_for_write(image, _write_ext(path)), path, quality=quality)


def _write_ext(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise ImageError(f"{path}: unsupported output format {ext or '(none)'}; use one of {sorted(IMAGE_EXTS)}")
    return ext


def write_bgr(arr: np.ndarray, path: str | Path, *, quality: int = 95) -> Path:
    """Write pixels already in OpenCV's layout (gray (H, W), BGR or BGRA, uint8 or uint16) atomically.

    Args:
        arr: the pixels, as ``to_bgr_for_write`` makes them for the path's format.
        path: output file; the format follows the extension.
        quality: JPEG / WebP quality.

    Returns:
        The path.
    """
    path = Path(path)
    ext = _write_ext(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), arr, _encode_params(ext, quality)):
            raise ImageError(f"{path}: OpenCV could not write this format")
    return path


def _encode_params(ext: str, quality: int) -> list[int]:
    if ext in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, quality]
    if ext == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, min(quality, 100)]
    return []


def encode_bgr(arr: np.ndarray, ext: str, *, quality: int = 95) -> bytes:
    """Encode pixels in OpenCV's layout to a file's bytes, as ``write_bgr`` would write them.

    Args:
        arr: gray (H, W), BGR or BGRA, uint8 or uint16 (as ``to_bgr_for_write`` makes them for ``ext``).
        ext: the output format's extension (``.png``, ``.jpg``, ...).
        quality: JPEG / WebP quality.

    Returns:
        The encoded file.
    """
    ext = ext.lower()
    if ext not in IMAGE_EXTS:
        raise ImageError(f"unsupported output format {ext or '(none)'}; use one of {sorted(IMAGE_EXTS)}")
    ok, buf = cv2.imencode(ext, arr, _encode_params(ext, quality))
    if not ok:
        raise ImageError(f"OpenCV could not encode {ext}")
    return buf.tobytes()


def side_by_side(gray: DecodedImage, colour: DecodedImage) -> DecodedImage:
    """gray | colour, horizontally (same height)."""
    rgb = np.concatenate([gray.rgb, colour.rgb], axis=1)
    alpha = None
    if colour.alpha is not None:
        alpha = np.concatenate([colour.alpha, colour.alpha], axis=1)
    return replace(colour, rgb=rgb, alpha=alpha, gray=False)
