"""Empirical ab prior over the 313 bins and the class-rebalancing weights (paper eq. 3-4)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .bins import ab_bins, nearest_bins
from .constants import LAMBDA_REBAL, NUM_BINS, SIGMA_PRIOR


def bin_histogram(ab: np.ndarray) -> np.ndarray:
    """ab (..., 2) -> counts (313,) of pixels hard-assigned to their nearest bin."""
    idx, _ = nearest_bins(np.asarray(ab, np.float32).reshape(-1, 2), 1)
    return np.bincount(idx.ravel(), minlength=NUM_BINS).astype(np.float64)


MIN_PRIOR_BINS = 10  # a prior of real colour photos fills well over 100 of the 313 bins


def prior_warning(prior: np.ndarray) -> str | None:
    """Why ``prior`` is too narrow to rebalance colours with (grayscale or near-monochrome images), or None."""
    filled = int((np.asarray(prior) > 0).sum())
    if filled >= MIN_PRIOR_BINS:
        return None
    return f"the prior fills only {filled} of the {NUM_BINS} colour bins (grayscale or one-colour images?): not a colour prior"


def prior_from_ab_maps(ab_maps: Iterable[np.ndarray]) -> np.ndarray:
    """Iterable of ab maps (..., 2) -> normalised prior p (313,) pooled over all pixels."""
    counts = np.zeros(NUM_BINS, np.float64)
    for ab in ab_maps:
        counts += bin_histogram(ab)
    if counts.sum() == 0:
        raise ValueError("no pixels to compute a prior from")
    return counts / counts.sum()


def smooth_prior(p: np.ndarray, sigma: float = SIGMA_PRIOR) -> np.ndarray:
    """Gaussian smoothing of the prior in ab space (σ in ab units), renormalised to sum 1."""
    table = ab_bins().astype(np.float64)
    d2 = ((table[:, None, :] - table[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * sigma**2))
    kernel /= kernel.sum(0, keepdims=True)  # each source bin spreads exactly its own mass
    q = kernel @ np.asarray(p, np.float64)
    return q / q.sum()


def rebalance_weights(p: np.ndarray, lam: float = LAMBDA_REBAL, sigma: float = SIGMA_PRIOR, smooth: bool = True) -> np.ndarray:
    """w ∝ ((1-λ)·p̃ + λ/Q)^-1, normalised so that Σ p̃·w = 1 (p̃ = smoothed prior)."""
    p = np.asarray(p, np.float64)
    if p.shape != (NUM_BINS,) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"prior must be a non-negative (313,) vector; got shape {p.shape}")
    p_s = smooth_prior(p / p.sum(), sigma) if smooth else p / p.sum()
    w = 1.0 / ((1.0 - lam) * p_s + lam / NUM_BINS)
    return (w / (p_s * w).sum()).astype(np.float32)


# share of the uniform distribution mixed into a palette's target histogram (docs/hints.md: 0.1 gave 0.9 dB less)
PALETTE_UNIFORM = 0.02


def palette_target(counts: np.ndarray, uniform: float = PALETTE_UNIFORM) -> np.ndarray:
    """A palette's target distribution over the 313 bins: the normalised ``counts`` mixed with a uniform share.

    Args:
        counts: (313,) non-negative bin counts (``bin_histogram`` of a reference's ab, or of a few colours).
        uniform: share of the uniform distribution (0..1): bins the reference never shows keep some mass, so
            the proportional fitting never drives a pixel's distribution to zero everywhere.

    Returns:
        (313,) float64 summing to 1.

    Raises:
        ValueError: not 313 finite non-negative counts with a positive sum, or ``uniform`` outside 0..1.
    """
    c = np.asarray(counts, np.float64)
    if c.shape != (NUM_BINS,) or not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        raise ValueError(f"a palette needs {NUM_BINS} non-negative counts with a positive sum; got shape {c.shape}")
    if not 0.0 <= uniform <= 1.0:
        raise ValueError(f"uniform must be in 0..1; got {uniform}")
    return (1.0 - uniform) * c / c.sum() + uniform / NUM_BINS
