"""The paper's evaluation over a folder of colour images (torch-free; shared by ``colorize-eval``,
the fp16/INT8 accuracy gate, training and the benchmarks).

Each image is resized so its shorter side is 256, converted to Lab; predictors map its L* (H, W) to
ab (2, H, W). Reported per method: raw and class-rebalanced AuC of the per-pixel ab error CDF
(thresholds 0..150, pooled over all pixels of the set) and mean RGB PSNR. The gray baseline (ab = 0)
is always scored. Nearly colourless images (mean |a|+|b| < 3) are excluded and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..core.color import lab_to_rgb, merge_l_ab, rgb_to_lab
from ..core.metrics import AucAccumulator, check_prior, inverse_prior_weights, psnr
from .bootstrap import MAX_RESAMPLES, ImageCounts, bootstrap_intervals, format_intervals

Predictor = Callable[[np.ndarray], np.ndarray]
EVAL_SHORT_SIDE = 256
MIN_CHROMA = 3.0


def resize_short_side(img: np.ndarray, short: int) -> np.ndarray:
    """Resize so the shorter side is ``short`` (area when shrinking, cubic when enlarging).

    Args:
        img: (H, W[, C]) image.
        short: target length of the shorter side.

    Returns:
        The resized image.
    """
    h, w = img.shape[:2]
    s = short / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def iter_lab_images(files: list[Path], short_side: int = EVAL_SHORT_SIDE) -> Iterator[tuple[Path, np.ndarray]]:
    """Read images as Lab at the evaluation size; unreadable ones are skipped.

    Args:
        files: image paths.
        short_side: resize so the shorter side is this (0: keep the size).

    Returns:
        An iterator of ``(path, Lab float32 (H, W, 3))``.
    """
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb = resize_short_side(rgb, short_side) if short_side else rgb
        yield path, rgb_to_lab(np.clip(rgb.astype(np.float32) / 255.0, 0, 1))


def evaluate(
    files: list[Path],
    predictors: dict[str, Predictor],
    short_side: int = EVAL_SHORT_SIDE,
    progress: bool = True,
    prior: np.ndarray | None = None,
    resamples: int = 0,
    group_of: Callable[[Path], str] | None = None,
) -> dict:
    """Score predictors and the gray baseline with the paper's metrics.

    Args:
        files: colour images (nearly colourless ones are excluded and counted).
        predictors: name -> function L* (H, W) -> ab (2, H, W).
        short_side: evaluation size (shorter side).
        progress: show a progress bar.
        prior: p(bin) over the 313 bins (e.g. ImageNet's) for the paper's rebalanced AuC, weights
            ``1 / p``; None leaves ``auc_rebal_prior`` out.
        resamples: with more than 0, add percentile intervals from that many paired bootstrap
            resamples of the images (``eval.bootstrap``; at most ``MAX_RESAMPLES``).
        group_of: path -> group name (e.g. the photo's source); each group is also scored on its own,
            from the same predictions. None: the whole set only.

    Returns:
        ``{"methods": {name: {auc_raw, auc_raw_img, auc_rebal[, auc_rebal_prior], psnr, n_images}},
        "n_excluded": int[, "intervals": ...][, "groups": {group: {"methods", "n_excluded"[, "intervals"]}}]}``:
        ``auc_raw`` pools every pixel, ``auc_raw_img`` is the mean of per-image AuCs (the paper's),
        ``auc_rebal`` weights by the set's own bin frequencies (a group's by the group's own);
        ``intervals`` is ``bootstrap_intervals``' result. Groups are in order of first appearance.
    """
    if not 0 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be 0..{MAX_RESAMPLES}; got {resamples}")
    if prior is not None:
        prior = check_prior(prior)
    methods = {"gray": lambda L: np.zeros((2, *L.shape), np.float32), **predictors}
    weights = None if prior is None else inverse_prior_weights(prior)
    whole = _Tally(list(methods), weights, resamples > 0)
    groups: dict[str, _Tally] = {}
    for path, lab in tqdm(iter_lab_images(files, short_side), total=len(files), disable=not progress, desc="eval"):
        tallies = [whole]
        if group_of is not None:
            tallies.append(groups.setdefault(group_of(path), _Tally(list(methods), weights, resamples > 0)))
        if np.abs(lab[..., 1:]).sum(-1).mean() < MIN_CHROMA:
            for tally in tallies:
                tally.excluded += 1
            continue
        L, ab_true = lab[..., 0], np.moveaxis(lab[..., 1:], -1, 0)
        rgb_true = lab_to_rgb(lab)
        for name, predict in methods.items():
            ab = predict(L)
            joint = whole.accs[name].add(ab, ab_true)
            score = psnr(lab_to_rgb(merge_l_ab(L, ab)), rgb_true)
            for tally in tallies:
                tally.add(name, joint, score, counted=tally is whole)
    result = whole.result(prior, resamples)
    if group_of is not None:
        result["groups"] = {group: tally.result(prior, resamples) for group, tally in groups.items()}
    return result


class _Tally:
    """What one set of images (the whole set, or one group of it) has collected for every method."""

    def __init__(self, names: list[str], weights: np.ndarray | None, keep_images: bool):
        self.accs = {name: AucAccumulator() for name in names}
        self.psnrs: dict[str, list[float]] = {name: [] for name in names}
        self.per_image = {name: ImageCounts(weights) for name in names} if keep_images else None
        self.excluded = 0

    def add(self, name: str, joint: np.ndarray, score: float, counted: bool) -> None:
        """One method's result on one image: its joint counts (already pooled here when ``counted``) and PSNR."""
        if not counted:
            self.accs[name].add_counts(joint)
        self.psnrs[name].append(score)
        if self.per_image:
            self.per_image[name].add(joint, self.accs[name].image_aucs[-1], score)

    def result(self, prior: np.ndarray | None, resamples: int) -> dict:
        result = {
            "methods": {name: _scores(acc, self.psnrs[name], prior) for name, acc in self.accs.items()},
            "n_excluded": self.excluded,
        }
        if self.per_image and self.psnrs["gray"]:
            result["intervals"] = bootstrap_intervals(self.per_image, resamples)
        return result


def _scores(acc: AucAccumulator, psnrs: list[float], prior: np.ndarray | None) -> dict:
    nan = float("nan")
    scores = {
        "auc_raw": acc.auc_raw() if psnrs else nan,
        "auc_raw_img": acc.auc_raw_per_image() if psnrs else nan,
        "auc_rebal": acc.auc_rebalanced() if psnrs else nan,
    }
    if prior is not None:
        scores["auc_rebal_prior"] = acc.auc_rebalanced(prior) if psnrs else nan
    return {**scores, "psnr": float(np.mean(psnrs)) if psnrs else nan, "n_images": len(psnrs)}


def format_table(result: dict) -> str:
    """The result of ``evaluate`` as a text table.

    Args:
        result: what ``evaluate`` returned.

    Returns:
        One line per method, the excluded count and a legend; then the intervals, and each group's own
        table (and intervals) when there are any.
    """
    with_prior = any("auc_rebal_prior" in m for m in result["methods"].values())
    lines = _method_rows(result, with_prior)
    lines.append(
        "AuC raw: pooled over pixels; raw/img: mean of per-image AuCs (the paper's); AuC rebal: weights from the "
        "set's own bin frequencies" + ("; rebal/prior: weights 1/p from the given prior (the paper's)" if with_prior else "")
    )
    if "intervals" in result:
        lines += ["", format_intervals(result["intervals"])]
    for group, part in result.get("groups", {}).items():
        lines += ["", f"== group {group!r}", *_method_rows(part, with_prior)]
        if "intervals" in part:
            lines += [format_intervals(part["intervals"])]
    return "\n".join(lines)


def _method_rows(result: dict, with_prior: bool) -> list[str]:
    head = f"{'method':<24} {'AuC raw':>8} {'raw/img':>8} {'AuC rebal':>10}"
    lines = [head + (f" {'rebal/prior':>11}" if with_prior else "") + f" {'PSNR':>7} {'images':>7}"]
    for name, m in result["methods"].items():
        row = f"{name:<24} {m['auc_raw']:8.2f} {m.get('auc_raw_img', float('nan')):8.2f} {m['auc_rebal']:10.2f}"
        if with_prior:
            row += f" {m.get('auc_rebal_prior', float('nan')):11.2f}"
        lines.append(row + f" {m['psnr']:7.2f} {m['n_images']:7d}")
    lines.append(f"(excluded as nearly colourless: {result['n_excluded']})")
    return lines
