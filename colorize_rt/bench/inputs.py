"""The benchmark's inputs: L* maps of real photos (centre-cropped square, resized), shared by all backends.

Photos come from ``--photos``, ``$COLORIZE_BENCH_PHOTOS`` or ``../shared/data/colorize-train/val`` next to
the checkout; without any, scikit-image's sample images, else a deterministic synthetic scene.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..core.color import rgb_to_l
from ..core.constants import DEFAULT_T
from ..core.files import list_images

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_photo_dir() -> Path | None:
    env = os.environ.get("COLORIZE_BENCH_PHOTOS")
    candidates = [Path(env)] if env else []
    candidates += [
        REPO_ROOT.parent / "shared/data/colorize-train/val",
        Path.cwd().parent / "shared/data/colorize-train/val",
    ]
    for c in candidates:
        if c.is_dir() and any(c.iterdir()):
            return c
    return None


def _square(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = rgb[y : y + s, x : x + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if size < s else cv2.INTER_CUBIC)


def sample_rgbs(photo_dir: Path | None, count: int) -> tuple[list[np.ndarray], str]:
    if photo_dir is not None:
        rgbs = []
        for p in list_images(photo_dir, limit=count * 2):
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is not None:
                rgbs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if len(rgbs) == count:
                break
        if rgbs:
            return rgbs, f"{len(rgbs)} photos from {photo_dir}"
    try:
        from skimage import data

        rgbs = [getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]
        return rgbs[:count], "scikit-image sample images"
    except ImportError:
        pass
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32) / 255
    rgb = np.stack([xx, yy, (xx + yy) / 2], -1) * 255
    return [rgb.astype(np.uint8)], "synthetic gradient"


@lru_cache(maxsize=4)
def photo_l_maps(size: int, count: int = 8, photo_dir: str | None = None) -> tuple[np.ndarray, str]:
    """(count', size, size) float32 L* maps and a description of where they came from."""
    rgbs, source = sample_rgbs(Path(photo_dir) if photo_dir else default_photo_dir(), count)
    maps = [rgb_to_l(_square(rgb, size).astype(np.float32) / 255.0) for rgb in rgbs]
    return np.stack(maps).astype(np.float32), source


def make_feed(size: int, batch: int, photo_dir: str | None = None, temperature: float = DEFAULT_T) -> dict[str, np.ndarray]:
    """The feed every backend gets for one case: a batch cycling through the photos."""
    maps, _ = photo_l_maps(size, photo_dir=photo_dir)
    idx = np.arange(batch) % len(maps)
    return {"L": np.ascontiguousarray(maps[idx][:, None]), "temperature": np.array(temperature, np.float32)}


def first_photo(photo_dir: str | None) -> str | None:
    """Path of the first photo in ``photo_dir`` (the tiled benchmark upsamples it), or None."""
    if not photo_dir:
        return None
    files = list_images(photo_dir, limit=1)
    return str(files[0]) if files else None


def gray_photo(photo_dir: str | None, width: int, height: int) -> np.ndarray:
    """A gray photo of ``width`` x ``height``: the first readable one of ``photo_dir``'s first five, resized, else
    scikit-image's astronaut (the ``dev`` extra).

    Args:
        photo_dir: a folder of photos, or None.
        width: output width.
        height: output height.

    Returns:
        (height, width) uint8.
    """
    gray = None
    for p in list_images(photo_dir, limit=5) if photo_dir else []:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if gray is not None:
            break
    if gray is None:
        from skimage import data  # dev extra

        gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_CUBIC)
