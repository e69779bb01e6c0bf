"""The paper's evaluation: AuC of the CDF of per-pixel ab L2 error (thresholds 0..150), raw and
class-rebalanced (each pixel weighted by the inverse probability of its ground-truth bin), and RGB PSNR.

Two readings of each AuC are kept apart:
- raw: pooled over every pixel of the set, or the mean of per-image AuCs (the paper's way);
- rebalanced: ``p(bin)`` from the set being evaluated (each bin then weighs the same), or from a given
  prior such as ImageNet's (the paper's way: ``w = 1 / p_ImageNet(bin)``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bins import nearest_bins
from .constants import NUM_BINS

MAX_THRESHOLD = 150


def psnr(rgb_pred: np.ndarray, rgb_true: np.ndarray) -> float:
    """PSNR in dB of two sRGB images in [0, 1]."""
    mse = float(np.mean((np.asarray(rgb_pred, np.float64) - np.asarray(rgb_true, np.float64)) ** 2))
    return 100.0 if mse <= 1e-12 else 10.0 * np.log10(1.0 / mse)


def auc_of_counts(counts: np.ndarray) -> float | np.ndarray:
    """(Weighted) pixel counts per error bucket -> the AuC of their CDF (NaN with no pixels).

    Args:
        counts: (..., 152) counts; each row along the last axis is one set of pixels.

    Returns:
        A float for one row, else an array of the leading shape.
    """
    counts = np.asarray(counts, np.float64)
    total = counts.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.cumsum(counts, axis=-1)[..., : MAX_THRESHOLD + 1] / total
    auc = np.where(total[..., 0] > 0, np.trapezoid(cdf, dx=1.0, axis=-1) / MAX_THRESHOLD * 100.0, np.nan)
    return float(auc) if auc.ndim == 0 else auc


def check_prior(prior) -> np.ndarray:
    """A prior over the 313 bins as float64, or ValueError saying what is wrong with it."""
    p = np.asarray(prior, np.float64)
    if p.shape != (NUM_BINS,):
        raise ValueError(f"a prior needs {NUM_BINS} values (one per ab bin); got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError("a prior needs finite, non-negative values with a positive sum")
    return p / p.sum()


def inverse_prior_weights(prior) -> np.ndarray:
    """The paper's rebalancing weights ``1 / p(bin)`` of a prior (0 for bins the prior says never occur)."""
    p = check_prior(prior)
    return np.where(p > 0, 1.0 / np.maximum(p, 1e-300), 0.0)


@dataclass
class AucAccumulator:
    """Pools per-pixel ab errors over a set. Errors are bucketed by ceil(err) so the CDF at the
    integer thresholds is exact; the joint histogram with the ground-truth bin lets the rebalanced
    weights come from the prior of the very set being evaluated."""

    hist: np.ndarray = field(default_factory=lambda: np.zeros((NUM_BINS, MAX_THRESHOLD + 2), np.float64))
    image_aucs: list[float] = field(default_factory=list)

    def add(self, ab_pred: np.ndarray, ab_true: np.ndarray) -> np.ndarray:
        """Pool one image.

        Args:
            ab_pred: predicted ab (2, H, W).
            ab_true: true ab (2, H, W).

        Returns:
            The image's own (313, 152) pixel counts by ground-truth bin and error bucket.
        """
        err = np.sqrt(((np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)) ** 2).sum(0))
        bucket = np.minimum(np.ceil(err).astype(np.int64), MAX_THRESHOLD + 1).ravel()
        gt_bin, _ = nearest_bins(np.moveaxis(np.asarray(ab_true, np.float32), 0, -1).reshape(-1, 2), 1)
        flat = gt_bin.ravel() * (MAX_THRESHOLD + 2) + bucket
        joint = np.bincount(flat, minlength=self.hist.size).reshape(self.hist.shape)
        self.add_counts(joint)
        return joint

    def add_counts(self, joint: np.ndarray) -> None:
        """Pool one image already counted by ``add`` (e.g. by another accumulator over a subset).

        Args:
            joint: the image's (313, 152) pixel counts by ground-truth bin and error bucket.
        """
        self.hist += joint
        self.image_aucs.append(auc_of_counts(joint.sum(0)))

    def auc_raw(self) -> float:
        return auc_of_counts(self.hist.sum(0))

    def auc_raw_per_image(self) -> float:
        """Mean of the per-image raw AuCs (the paper's raw AuC): each image counts once, whatever its size."""
        return float(np.mean(self.image_aucs)) if self.image_aucs else float("nan")

    def auc_rebalanced(self, prior: np.ndarray | None = None) -> float:
        """Rebalanced AuC, pooled over the set.

        Args:
            prior: p(bin) (313 values) to weight pixels by ``1 / p``; None uses the set's own bin
                frequencies, so every bin present carries the same total weight.

        Returns:
            The AuC (0..100).
        """
        if prior is None:
            per_bin = self.hist.sum(1)
            w = np.where(per_bin > 0, 1.0 / np.maximum(per_bin, 1e-12), 0.0)  # ∝ 1 / p(bin)
        else:
            w = inverse_prior_weights(prior)
        return auc_of_counts((self.hist * w[:, None]).sum(0))
