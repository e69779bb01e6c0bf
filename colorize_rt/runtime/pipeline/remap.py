"""``cv2.remap`` for outputs of any size.

OpenCV asserts that every side of a remap's source, maps and output is below ``SHRT_MAX`` (32,767), so a
40,000 x 32 panorama failed in the upsampling and table paths. ``remap`` does such outputs in chunks; the
sources here (the network's ab, a palette) are always small.
"""

from __future__ import annotations

import cv2
import numpy as np

CV_MAX_SIDE = 32766  # the largest side cv2.remap takes
CHUNK = 16384


def remap(
    src: np.ndarray,
    map1: np.ndarray,
    map2: np.ndarray | None,
    interpolation: int,
    border_mode: int = cv2.BORDER_CONSTANT,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    """``cv2.remap(src, map1, map2, interpolation, dst, borderMode)`` for maps of any height and width.

    Args:
        src: the source image; both its sides at most ``CV_MAX_SIDE``.
        map1: x coordinates (H, W) float32, or (H, W, 2) int16 (x, y) pairs.
        map2: y coordinates (H, W) float32, or None with int16 pairs.
        interpolation: an OpenCV interpolation flag.
        border_mode: an OpenCV border mode.
        dst: the output (H, W[, C]) to write into, or None for a new one.

    Returns:
        The remapped (H, W[, C]) image (``dst`` when given).
    """
    if max(src.shape[:2]) > CV_MAX_SIDE:
        raise ValueError(f"remap source {src.shape[:2]} has a side over {CV_MAX_SIDE}")
    H, W = map1.shape[:2]
    if H <= CV_MAX_SIDE and W <= CV_MAX_SIDE:
        return cv2.remap(src, map1, map2, interpolation, dst=dst, borderMode=border_mode)
    if dst is None:
        dst = np.empty((H, W, *src.shape[2:]), src.dtype)
    for y0 in range(0, H, CHUNK):
        for x0 in range(0, W, CHUNK):
            part = (slice(y0, y0 + CHUNK), slice(x0, x0 + CHUNK))
            m2 = None if map2 is None else np.ascontiguousarray(map2[part])
            dst[part] = cv2.remap(src, np.ascontiguousarray(map1[part]), m2, interpolation, borderMode=border_mode)
    return dst
