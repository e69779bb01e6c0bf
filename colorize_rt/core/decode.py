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

    The sum over the bins is an ``einsum``, not a BLAS call (``tensordot``): BLAS leaves its worker threads
    spinning after a call, and on 2 cores that made the hint propagation right after a palette's decode about
    twice as slow (1 MP update with hints + palette: 225 -> 121 ms).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    p = softmax(np.asarray(logits, np.float64) / temperature, axis)
    ab = np.einsum("...k,kc->...c", np.moveaxis(p, axis, -1), ab_bins().astype(np.float64))
    return np.moveaxis(ab, -1, axis).astype(np.float32)


PALETTE_ROUNDS = 8  # proportional-fitting rounds (3..10 converge on real photos)


def palette_log_weights(
    logits: np.ndarray, target: np.ndarray, temperature: float = DEFAULT_T, rounds: int = PALETTE_ROUNDS
) -> np.ndarray:
    """Log-weights per bin that move the image-average annealed distribution toward ``target`` (iterative
    proportional fitting in log space): ``w += log(target / mean_pixels softmax(logits / T + w))``.

    Decode with ``annealed_mean(logits + T * w, T)`` (the same distribution the fitting saw).

    Args:
        logits: (N, 313, h, w) network logits (one image's pixels are pooled over N, h and w).
        target: (313,) target distribution (``core.prior.palette_target``).
        temperature: the annealed-mean temperature the result will be decoded at.
        rounds: fitting rounds (0 gives zero weights).

    Returns:
        (313,) float64 log-weights, on the ``logits / T`` scale.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    t = np.asarray(target, np.float64)
    z = np.moveaxis(np.asarray(logits, np.float32), 1, -1).reshape(-1, t.size) / np.float32(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)  # softmax(z + w) = e * exp(w) / row sum: one exp, then only products per round
    w = np.zeros(t.size, np.float64)
    for _ in range(rounds):
        ew = np.exp(w - w.max()).astype(np.float32)
        p = e * ew
        p /= p.sum(axis=1, keepdims=True)
        q = p.mean(axis=0, dtype=np.float64)
        w += np.log(np.maximum(t, 1e-12) / np.maximum(q, 1e-12))
        w -= w.max()
    return w
