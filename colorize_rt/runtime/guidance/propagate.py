"""Point hints propagated along objects (training-free): the correction a hint asks for (hint ab - predicted ab) is
spread with an edge-aware normalised convolution over the network-resolution L* (the domain transform's recursive
filter, Gastal & Oliveira 2011), so it follows regions of similar lightness and stops at edges; the hint's own
pixels are then set exactly.

For each pixel the spread correction is ``F(m * d) / (F(m) + k * F1)``: ``F`` the edge-aware filter, ``m`` the
hint mask, ``d`` the correction, ``F1`` what one isolated hint pixel gives at its own position and ``k`` the
reach: far from every hint (or behind an edge) ``F(m)`` falls below ``k * F1`` and the prediction is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .spec import PointHint

SIGMA_SPACE = 48.0  # filter's spatial extent, in network pixels
SIGMA_RANGE = 6.0  # lightness step (L* units) that counts as one spatial sigma of distance: edges stop hints
REACH = 0.02  # k: a hint's correction fades where its filtered mask falls below k times its peak
ITERATIONS = 3


@dataclass(frozen=True)
class PropagationSettings:
    """The propagation's knobs (defaults measured on training photos: docs/hints.md)."""

    sigma_space: float = SIGMA_SPACE
    sigma_range: float = SIGMA_RANGE
    reach: float = REACH
    iterations: int = ITERATIONS


def _recursive_pass(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """One causal + anti-causal recursive filter along axis 0 of x (n, m, c) with feedback a (n, m)."""
    out = x.copy()
    for i in range(1, out.shape[0]):
        out[i] += a[i][:, None] * (out[i - 1] - out[i])
    for i in range(out.shape[0] - 2, -1, -1):
        out[i] += a[i + 1][:, None] * (out[i + 1] - out[i])
    return out


def edge_aware_filter(values: np.ndarray, L: np.ndarray, settings: PropagationSettings = PropagationSettings()) -> np.ndarray:
    """The domain transform's recursive filter of ``values`` guided by ``L``.

    Args:
        values: (h, w, c) float32 channels to filter.
        L: (h, w) guide (L*, 0..100).
        settings: spatial and range sigmas, iterations.

    Returns:
        (h, w, c) float32.
    """
    L = np.asarray(L, np.float32)
    ratio = settings.sigma_space / settings.sigma_range
    dx = 1.0 + ratio * np.abs(np.diff(L, axis=1))  # (h, w-1): domain distance between horizontal neighbours
    dy = 1.0 + ratio * np.abs(np.diff(L, axis=0))  # (h-1, w)
    out = np.asarray(values, np.float32).copy()
    n = settings.iterations
    for k in range(n):
        sigma = settings.sigma_space * np.sqrt(3.0) * 2 ** (n - k - 1) / np.sqrt(4.0**n - 1)
        base = np.float32(np.exp(-np.sqrt(2.0) / sigma))
        ax = np.concatenate([np.zeros((L.shape[0], 1), np.float32), base**dx], axis=1)  # feedback into column j
        ay = np.concatenate([np.zeros((1, L.shape[1]), np.float32), base**dy], axis=0)
        out = np.swapaxes(_recursive_pass(np.swapaxes(out, 0, 1), ax.T), 0, 1)
        out = _recursive_pass(out, ay)
    return out


def hint_mask(hints: list[PointHint], shape: tuple[int, int], scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Hints drawn at network resolution.

    Args:
        hints: hints in input-image pixels.
        shape: (h, w) of the network-resolution map.
        scale: (sy, sx) network pixels per input pixel.

    Returns:
        (mask (h, w) float32 in {0, 1}, ab (h, w, 2) float32 the hint colours where the mask is 1; later hints win).
    """
    h, w = shape
    sy, sx = scale
    mask = np.zeros((h, w), np.float32)
    ab = np.zeros((h, w, 2), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for hint in hints:
        cy = min(h - 1.0, max(0.0, (hint.y + 0.5) * sy - 0.5))
        cx = min(w - 1.0, max(0.0, (hint.x + 0.5) * sx - 0.5))
        r = hint.radius * min(sx, sy)
        y0, y1 = max(0, int(np.floor(cy - r - 1))), min(h, int(np.ceil(cy + r + 2)))
        x0, x1 = max(0, int(np.floor(cx - r - 1))), min(w, int(np.ceil(cx + r + 2)))
        d2 = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2
        inside = d2 <= max(r, 0.5) ** 2 + 1e-6
        if not inside.any():  # a radius under half a network pixel: the nearest pixel
            inside = d2 == d2.min()
        mask[y0:y1, x0:x1][inside] = 1.0
        ab[y0:y1, x0:x1][inside] = hint.ab
    return mask, ab


def apply_point_hints(
    L: np.ndarray,
    ab: np.ndarray,
    mask: np.ndarray,
    hint_ab: np.ndarray,
    settings: PropagationSettings = PropagationSettings(),
) -> np.ndarray:
    """Spread the hints' corrections over ``ab`` along ``L``'s regions; hint pixels get the hint colour exactly.

    Args:
        L: (h, w) L* at network resolution.
        ab: (2, h, w) the prediction.
        mask: (h, w) 1 at hint pixels (``hint_mask``).
        hint_ab: (h, w, 2) hint colours at those pixels.
        settings: the propagation's knobs.

    Returns:
        (2, h, w) float32.
    """
    if not mask.any():
        return ab
    pred = np.moveaxis(np.asarray(ab, np.float32), 0, -1)
    delta = (hint_ab - pred) * mask[..., None]
    stack = np.concatenate([delta, mask[..., None]], axis=-1)
    filtered = edge_aware_filter(stack, L, settings)
    peak = _single_pixel_peak(settings)
    spread = filtered[..., :2] / (filtered[..., 2:] + np.float32(settings.reach * peak))
    out = pred + spread
    out[mask > 0] = hint_ab[mask > 0]
    return np.ascontiguousarray(np.moveaxis(out, -1, 0))


@lru_cache(maxsize=8)
def _single_pixel_peak(settings: PropagationSettings) -> float:
    """What the filter leaves at an isolated pixel's own position on a flat guide (the normaliser of ``reach``)."""
    size = int(min(257, 2 * settings.sigma_space * 3 + 1)) | 1
    impulse = np.zeros((size, size, 1), np.float32)
    impulse[size // 2, size // 2] = 1.0
    return float(edge_aware_filter(impulse, np.zeros((size, size), np.float32), settings)[size // 2, size // 2, 0])
