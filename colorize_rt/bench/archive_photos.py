"""An archive of mixed kinds of photo for ``colorize-rt batch`` (its tests and its benchmark phase).

Kinds, in turn: 8-bit gray JPEG, 8-bit gray PNG, 16-bit gray PNG, 16-bit colour PNG (OpenCV), RGBA PNG,
CMYK JPEG, EXIF-rotated JPEG (orientation 6), palette PNG, 16-bit gray TIFF, gray WebP, BMP. Each is cut
from a real photo, made small (``side`` px on the longer side) and spread over sub-folders.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..core.files import list_images

ARCHIVE_KINDS = ("gray.jpg", "gray.png", "gray16.png", "rgb16.png", "rgba.png", "cmyk.jpg", "exif6.jpg",
                 "palette.png", "gray16.tiff", "gray.webp", "rgb.bmp")  # fmt: skip


def _exif_rotated(rgb: np.ndarray) -> bytes:
    im = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # stored turned; orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def _write_kind(rgb: np.ndarray, kind: str, path: Path) -> None:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if kind == "gray.jpg":
        Image.fromarray(gray).save(path, quality=90)
    elif kind in ("gray.png", "gray.webp"):
        Image.fromarray(gray).save(path)
    elif kind in ("gray16.png", "gray16.tiff"):
        cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    elif kind == "rgb16.png":
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    elif kind == "rgba.png":
        alpha = np.linspace(64, 255, rgb.shape[1], dtype=np.uint8)[None].repeat(rgb.shape[0], 0)
        Image.fromarray(np.dstack([rgb, alpha])).save(path)
    elif kind == "cmyk.jpg":
        Image.fromarray(rgb).convert("CMYK").save(path, quality=90)
    elif kind == "exif6.jpg":
        path.write_bytes(_exif_rotated(rgb))
    elif kind == "palette.png":
        Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)
    elif kind == "rgb.bmp":
        Image.fromarray(rgb).save(path)
    else:
        raise ValueError(f"unknown kind {kind}")


def make_archive(folder: str | Path, photo_dir: str | Path, n: int = 50, side: int = 96) -> list[Path]:
    """Write ``n`` small photos of mixed kinds (``ARCHIVE_KINDS`` in turn) under ``folder``, in sub-folders.

    Args:
        folder: where to write them (created).
        photo_dir: a folder of real photos to cut them from.
        n: how many.
        side: the longer side in pixels.

    Returns:
        The written paths.
    """
    folder = Path(folder)
    sources = list_images(photo_dir, limit=n)
    if not sources:
        raise RuntimeError(f"no photos in {photo_dir} to build the archive from")
    paths = []
    for i in range(n):
        rgb = np.asarray(Image.open(sources[i % len(sources)]).convert("RGB"))
        scale = side / max(rgb.shape[:2])
        wh = (max(8, round(rgb.shape[1] * scale)), max(8, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, wh, interpolation=cv2.INTER_AREA)
        kind = ARCHIVE_KINDS[i % len(ARCHIVE_KINDS)]
        stem, ext = kind.split(".")
        path = folder / f"box{i % 3}" / (f"roll{i % 2}" if i % 5 else "") / f"photo_{i:03d}_{stem}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_kind(rgb, kind, path)
        paths.append(path)
    return paths
