"""The paper's 313 quantised ab bins (grid 10) in the official order, and soft-encoding."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from .constants import GRID, NUM_BINS, SIGMA_SOFT

# For each a (step 10), the in-gamut b range [min, max] (step 10): the official pts_in_hull set.
_B_RANGES = {
    -90: (50, 90), -80: (20, 90), -70: (0, 90), -60: (-20, 90), -50: (-30, 100), -40: (-40, 100),
    -30: (-50, 100), -20: (-50, 100), -10: (-60, 100), 0: (-70, 100), 10: (-80, 90), 20: (-80, 90),
    30: (-90, 90), 40: (-100, 90), 50: (-100, 80), 60: (-110, 80), 70: (-110, 80), 80: (-110, 70),
    90: (-110, 70), 100: (-90, 0),
}  # fmt: skip


@lru_cache(maxsize=1)
def _bins() -> np.ndarray:
    pts = [(a, b) for a in sorted(_B_RANGES) for b in range(_B_RANGES[a][0], _B_RANGES[a][1] + 1, GRID)]
    table = np.array(pts, dtype=np.float32)
    assert table.shape == (NUM_BINS, 2)
    table.setflags(write=False)
    return table


def ab_bins() -> np.ndarray:
    """(313, 2) float32 ab bin centres, sorted by a then b (row 0 = (-90, 50), row 312 = (100, 0))."""
    return _bins()


def bins_hash() -> str:
    """Short sha256 of the bin table, recorded in checkpoints and ONNX metadata."""
    return hashlib.sha256(np.ascontiguousarray(ab_bins(), dtype=np.float32).tobytes()).hexdigest()[:16]


def nearest_bins(ab: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """ab (..., 2) -> (indices (..., k), squared distances (..., k)) of the k nearest bins, nearest first."""
    ab = np.asarray(ab, dtype=np.float32)
    flat = ab.reshape(-1, 2)
    table = ab_bins()
    d2 = (flat * flat).sum(1, keepdims=True) - 2.0 * flat @ table.T + (table * table).sum(1)[None, :]
    d2 = np.maximum(d2, 0.0)
    if k == 1:
        idx = d2.argmin(1)[:, None]
    else:
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(d2, idx, 1).argsort(1)
        idx = np.take_along_axis(idx, order, 1)
    dist = np.take_along_axis(d2, idx, 1)
    return idx.reshape(*ab.shape[:-1], k), dist.reshape(*ab.shape[:-1], k)


def soft_encode(ab: np.ndarray, k: int = 5, sigma: float = SIGMA_SOFT) -> np.ndarray:
    """ab (N, 2, H, W) -> soft targets (N, 313, H, W): k nearest bins, Gaussian weights, rows sum to 1.

    Torch twin: ``soft_encode_torch`` (``colorize_rt.training.loss``)."""
    ab = np.asarray(ab, dtype=np.float32)
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (N, 2, H, W); got {ab.shape}")
    n, _, h, w = ab.shape
    idx, d2 = nearest_bins(np.moveaxis(ab, 1, -1), k)
    wts = np.exp(-(d2 - d2[..., :1]) / (2 * sigma**2))  # shift by the nearest for stability
    wts /= wts.sum(-1, keepdims=True)
    out = np.zeros((n, h, w, NUM_BINS), dtype=np.float32)
    np.put_along_axis(out, idx, wts.astype(np.float32), axis=-1)
    return np.moveaxis(out, -1, 1)
