"""How far an evaluation's numbers can be trusted: percentile intervals from a paired bootstrap over images.

The paper's rebalanced AuC weights each pixel by ``1 / p_ImageNet(bin)``, and those weights span eight
orders of magnitude: on our 262 validation photos the ten photos with the rarest colours carry over half
of the total weight. A difference between two models can then be one photo's colours, not the models.
Resampling the images with replacement (the same resample for every method, so differences are paired)
shows how much of a number is the set.

Resampled: ``auc_raw`` (pooled), ``auc_raw_img`` (the paper's raw), ``auc_rebal_prior`` (the paper's
rebalanced, when a prior was given) and ``psnr``. Not ``auc_rebal``: its weights come from the bin
frequencies of the set being scored, so they would change with every resample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.metrics import auc_of_counts

RESAMPLED = ("auc_raw", "auc_raw_img", "auc_rebal_prior", "psnr")
MAX_RESAMPLES = 20_000
_DRAW_CELLS = 4_000_000  # resamples are drawn in chunks of at most this many (resample, image) counts: 32 MB


@dataclass
class ImageCounts:
    """One method's per-image error counts: what the bootstrap resamples (2 x 152 numbers an image).

    Args:
        weights: per-bin pixel weights ``1 / p`` for the rebalanced reading, or None for none.
    """

    weights: np.ndarray | None = None
    raw: list[np.ndarray] = field(default_factory=list)
    rebal: list[np.ndarray] = field(default_factory=list)
    auc_img: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)

    def add(self, joint: np.ndarray, auc_img: float, psnr: float) -> None:
        """Record one image.

        Args:
            joint: (313, 152) pixel counts by ground-truth bin and error bucket (``AucAccumulator.add``).
            auc_img: the image's own raw AuC.
            psnr: the image's PSNR.
        """
        self.raw.append(joint.sum(0))
        if self.weights is not None:
            self.rebal.append((joint * self.weights[:, None]).sum(0))
        self.auc_img.append(auc_img)
        self.psnr.append(psnr)


def resampled_scores(c: ImageCounts, draws: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric under each resample.

    Args:
        c: one method's per-image counts.
        draws: (R, images): how often each resample drew each image.

    Returns:
        metric name -> (R,) values, each what ``evaluate`` would report on that resample's images.
    """
    n = draws.shape[1]
    out = {
        "auc_raw": auc_of_counts(draws @ np.asarray(c.raw)),
        "auc_raw_img": draws @ np.asarray(c.auc_img) / n,
        "psnr": draws @ np.asarray(c.psnr) / n,
    }
    if c.weights is not None:
        out["auc_rebal_prior"] = auc_of_counts(draws @ np.asarray(c.rebal))
    return out


def bootstrap_intervals(
    counts: dict[str, ImageCounts], resamples: int = 1000, level: float = 0.95, seed: int = 0, reference: str = "gray"
) -> dict:
    """Percentile intervals of each method's metrics and of paired differences, resampling images.

    Args:
        counts: method name -> its per-image counts; every method must hold the same images in the same order.
        resamples: how many resamples (1..``MAX_RESAMPLES``).
        level: the intervals' coverage, e.g. 0.95.
        seed: seed of the resampling (the same seed gives the same intervals).
        reference: the baseline method; every other method's difference to it is reported, and so is
            every later method's difference to the first non-reference one.

    Returns:
        ``{"resamples", "level", "images", "methods": {name: {metric: [lo, hi]}},
        "differences": {"A - B": {metric: [lo, hi]}}}``.

    Raises:
        ValueError: on out-of-range arguments, or methods holding different numbers of images.
    """
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be 1..{MAX_RESAMPLES}; got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1; got {level}")
    sizes = {len(c.raw) for c in counts.values()}
    if len(sizes) != 1:
        raise ValueError(f"every method needs the same images; got image counts {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise ValueError("no images to resample")
    rng = np.random.default_rng(seed)
    samples: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in counts}
    chunk = max(1, min(resamples, _DRAW_CELLS // n))
    for start in range(0, resamples, chunk):
        draws = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, resamples - start)).astype(np.float64)
        for name, c in counts.items():
            for metric, values in resampled_scores(c, draws).items():
                samples[name].setdefault(metric, []).append(values)
    joined = {name: {m: np.concatenate(v) for m, v in s.items()} for name, s in samples.items()}
    q = [50 * (1 - level), 50 * (1 + level)]

    def interval(values: np.ndarray) -> list[float]:
        return [float(x) for x in np.percentile(values, q)]

    others = [name for name in counts if name != reference]
    pairs = [(name, reference) for name in others if reference in counts]
    pairs += [(name, others[0]) for name in others[1:]]
    return {
        "resamples": resamples,
        "level": level,
        "images": n,
        "methods": {name: {m: interval(v) for m, v in s.items()} for name, s in joined.items()},
        "differences": {
            f"{a} - {b}": {m: interval(joined[a][m] - joined[b][m]) for m in joined[a] if m in joined[b]} for a, b in pairs
        },
    }


def format_intervals(intervals: dict) -> str:
    """``bootstrap_intervals``' result as a text table: one line per method, then one per difference."""
    metrics = [m for m in RESAMPLED if any(m in v for v in intervals["methods"].values())]
    head = f"{'':<32}" + "".join(f" {m:>17}" for m in metrics)
    lines = [
        f"{intervals['level']:.0%} intervals, {intervals['resamples']} paired resamples of the {intervals['images']} images:",
        head,
    ]
    for name, vals in (*intervals["methods"].items(), *intervals["differences"].items()):
        cells = "".join(f" {vals[m][0]:7.2f} to {vals[m][1]:6.2f}" if m in vals else f" {'':>17}" for m in metrics)
        lines.append(f"{name:<32}{cells}")
    return "\n".join(lines)
