"""The paper's evaluation: AuC of the CDF of per-pixel ab L2 error (thresholds 0..150), raw and
class-rebalanced (each pixel weighted by the inverse probability of its ground-truth bin, pooled over
the whole set), and RGB PSNR."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bins import nearest_bins
from .constants import NUM_BINS

MAX_THRESHOLD = 150


def auc_from_cdf(cdf: np.ndarray) -> float:
    """CDF sampled at thresholds 0..150 -> area under it, normalised to 0..100."""
    return float(np.trapezoid(cdf, dx=1.0) / MAX_THRESHOLD * 100.0)


def psnr(rgb_pred: np.ndarray, rgb_true: np.ndarray) -> float:
    """PSNR in dB of two sRGB images in [0, 1]."""
    mse = float(np.mean((np.asarray(rgb_pred, np.float64) - np.asarray(rgb_true, np.float64)) ** 2))
    return 100.0 if mse <= 1e-12 else 10.0 * np.log10(1.0 / mse)


@dataclass
class AucAccumulator:
    """Pools per-pixel ab errors over a set. Errors are bucketed by ceil(err) so the CDF at the
    integer thresholds is exact; the joint histogram with the ground-truth bin lets the rebalanced
    weights come from the prior of the very set being evaluated."""

    hist: np.ndarray = field(default_factory=lambda: np.zeros((NUM_BINS, MAX_THRESHOLD + 2), np.float64))

    def add(self, ab_pred: np.ndarray, ab_true: np.ndarray) -> None:
        """ab maps (2, H, W) each."""
        err = np.sqrt(((np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)) ** 2).sum(0))
        bucket = np.minimum(np.ceil(err).astype(np.int64), MAX_THRESHOLD + 1).ravel()
        gt_bin, _ = nearest_bins(np.moveaxis(np.asarray(ab_true, np.float32), 0, -1).reshape(-1, 2), 1)
        flat = gt_bin.ravel() * (MAX_THRESHOLD + 2) + bucket
        self.hist += np.bincount(flat, minlength=self.hist.size).reshape(self.hist.shape)

    def auc_raw(self) -> float:
        counts = self.hist.sum(0)
        return auc_from_cdf(np.cumsum(counts)[: MAX_THRESHOLD + 1] / counts.sum())

    def auc_rebalanced(self) -> float:
        per_bin = self.hist.sum(1)
        w = np.where(per_bin > 0, 1.0 / np.maximum(per_bin, 1e-12), 0.0)  # ∝ 1 / p(bin)
        counts = (self.hist * w[:, None]).sum(0)
        return auc_from_cdf(np.cumsum(counts)[: MAX_THRESHOLD + 1] / counts.sum())
