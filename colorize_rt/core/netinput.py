"""The network's input convention: an L* map edge-padded to a multiple of the network stride (8)."""

from __future__ import annotations

import numpy as np

from .constants import NET_MIN_SIDE, NET_MULTIPLE


def pad_to_multiple(L: np.ndarray, m: int = NET_MULTIPLE, min_side: int = NET_MIN_SIDE) -> np.ndarray:
    """L* (H, W) -> float32 (H8, W8), edge-padded at the bottom and right to multiples of ``m`` and to at
    least ``min_side`` (the network's smallest input: panoramas and strips still run); crop results back
    to (H, W)."""
    h, w = L.shape
    ph, pw = max(-(-h // m) * m, min_side), max(-(-w // m) * m, min_side)
    return np.pad(np.asarray(L, np.float32), ((0, ph - h), (0, pw - w)), mode="edge")
