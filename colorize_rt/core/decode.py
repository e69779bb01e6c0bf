"""Annealed-mean decoding (paper eq. 5): H_T(Z) = E[softmax(log Z / T)] against the bin centres."""

from __future__ import annotations

import numpy as np

from .bins import ab_bins
from .constants import DEFAULT_T


def softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def annealed_mean(logits: np.ndarray, temperature: float = DEFAULT_T, axis: int = 1) -> np.ndarray:
    """Logits with the 313 bins on ``axis`` -> ab with 2 channels on that axis.

    Logits are log-probabilities up to a constant, so softmax(logits / T) is the paper's
    re-normalised exp(log Z / T). T -> 0 gives the mode, T = 1 the mean.
    Torch twin: ``annealed_mean_torch`` (``colorize_rt.models.decode``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    p = softmax(np.asarray(logits, np.float64) / temperature, axis)
    ab = np.tensordot(np.moveaxis(p, axis, -1), ab_bins().astype(np.float64), axes=([-1], [0]))
    return np.moveaxis(ab, -1, axis).astype(np.float32)
