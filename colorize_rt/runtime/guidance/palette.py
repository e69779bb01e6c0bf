"""A palette applied to a prediction (training-free): each pixel's 313-bin distribution is re-weighted by one set of
per-bin weights, fitted so the image-average distribution matches the palette's target (iterative proportional
fitting, ``core.decode.palette_log_weights``), then decoded with the annealed mean and upsampled x4 bilinearly
exactly as the exported graph's decode head does."""

from __future__ import annotations

import cv2
import numpy as np

from ...core.decode import PALETTE_ROUNDS, annealed_mean, palette_log_weights
from .spec import PaletteTarget


def palette_ab(
    logits: np.ndarray, palette: PaletteTarget, temperature: float, out_hw: tuple[int, int], rounds: int = PALETTE_ROUNDS
) -> np.ndarray:
    """ab of one image under a palette.

    Args:
        logits: (1, 313, h, w) the network's logits (the export's ``logits`` output) for the padded input.
        palette: the target distribution.
        temperature: the annealed-mean temperature.
        out_hw: (H, W) of the network input the logits came from (4h x 4w).
        rounds: proportional-fitting rounds.

    Returns:
        (2, H, W) float32.
    """
    w = palette_log_weights(logits, palette.target, temperature, rounds)
    shifted = np.asarray(logits, np.float32) + np.float32(temperature) * w.astype(np.float32)[None, :, None, None]
    ab = annealed_mean(shifted, temperature)[0]
    H, W = out_hw
    return np.stack([cv2.resize(c, (W, H), interpolation=cv2.INTER_LINEAR) for c in ab])
