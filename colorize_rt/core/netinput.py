"""The network's input convention: an L* map edge-padded to a multiple of the network stride (8)."""

from __future__ import annotations

import numpy as np

from .constants import NET_MULTIPLE


def pad_to_multiple(L: np.ndarray, m: int = NET_MULTIPLE) -> np.ndarray:
    """L* (H, W) -> float32 (H8, W8), edge-padded at the bottom and right; crop results back to (H, W)."""
    h, w = L.shape
    return np.pad(np.asarray(L, np.float32), ((0, (-h) % m), (0, (-w) % m)), mode="edge")
