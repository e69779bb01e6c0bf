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
from ..core.metrics import AucAccumulator, psnr

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
) -> dict:
    """Score predictors and the gray baseline with the paper's metrics.

    Args:
        files: colour images (nearly colourless ones are excluded and counted).
        predictors: name -> function L* (H, W) -> ab (2, H, W).
        short_side: evaluation size (shorter side).
        progress: show a progress bar.

    Returns:
        ``{"methods": {name: {auc_raw, auc_rebal, psnr, n_images}}, "n_excluded": int}``.
    """
    methods = {"gray": lambda L: np.zeros((2, *L.shape), np.float32), **predictors}
    accs = {name: AucAccumulator() for name in methods}
    psnrs: dict[str, list[float]] = {name: [] for name in methods}
    excluded = 0
    for _, lab in tqdm(iter_lab_images(files, short_side), total=len(files), disable=not progress, desc="eval"):
        if np.abs(lab[..., 1:]).sum(-1).mean() < MIN_CHROMA:
            excluded += 1
            continue
        L, ab_true = lab[..., 0], np.moveaxis(lab[..., 1:], -1, 0)
        rgb_true = lab_to_rgb(lab)
        for name, predict in methods.items():
            ab = predict(L)
            accs[name].add(ab, ab_true)
            psnrs[name].append(psnr(lab_to_rgb(merge_l_ab(L, ab)), rgb_true))
    return {
        "methods": {
            name: {
                "auc_raw": accs[name].auc_raw() if psnrs[name] else float("nan"),
                "auc_rebal": accs[name].auc_rebalanced() if psnrs[name] else float("nan"),
                "psnr": float(np.mean(psnrs[name])) if psnrs[name] else float("nan"),
                "n_images": len(psnrs[name]),
            }
            for name in methods
        },
        "n_excluded": excluded,
    }


def format_table(result: dict) -> str:
    """The result of ``evaluate`` as a text table.

    Args:
        result: what ``evaluate`` returned.

    Returns:
        One line per method, then the excluded count.
    """
    lines = [f"{'method':<24} {'AuC raw':>8} {'AuC rebal':>10} {'PSNR':>7} {'images':>7}"]
    for name, m in result["methods"].items():
        lines.append(f"{name:<24} {m['auc_raw']:8.2f} {m['auc_rebal']:10.2f} {m['psnr']:7.2f} {m['n_images']:7d}")
    lines.append(f"(excluded as nearly colourless: {result['n_excluded']})")
    return "\n".join(lines)
