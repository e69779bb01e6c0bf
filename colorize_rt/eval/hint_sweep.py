"""The point-hint and palette sweep of issue 30 (``colorize-eval --hint-sweep``), after siggraph17's.

Point hints: each photo is centre-cropped square and resized to 256²; N = 0, 1, 2, 5, 10, 20, 50, 100 hints are 6x6
patches at Gaussian-distributed locations (mean the centre, sigma a quarter of the side, clipped: richzhang/
colorization-pytorch's ``add_color_patches_rand_gt``), each coloured with the ground truth's mean ab over the patch.
The N hints of a photo are the first N of one fixed-seed draw of 100, so the sets are nested. Methods: the model with
our training-free propagation (``runtime.guidance.propagate``) and Levin et al. 2004 at 256² (``eval.levin``, no
network). Reported per N: PSNR, raw (per image, the paper's) and rebalanced AuC (``core.metrics``; rebalanced by
the set's own bins), each also as a gain over the same method at N = 0; and the mean |Δab| at hint pixels of the final
output (after
the conversion to sRGB and back, so gamut clipping counts).

Palette: the oracle (the ground truth's own colours: ``palette_from_ab``, per-L* band 313-bin histograms) and a wrong
reference (the previous photo's): how far the output's bin histogram is from the reference (total variation), with
and without the palette. ``eval.palette_sweep`` measures the palette alone and compares its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..core.color import lab_to_rgb, merge_l_ab, rgb_to_lab
from ..core.constants import DEFAULT_T
from ..core.metrics import AucAccumulator, psnr
from ..core.prior import bin_histogram
from ..runtime.guidance.palette import palette_ab
from ..runtime.guidance.propagate import PropagationSettings, apply_point_hints
from ..runtime.guidance.spec import PaletteTarget, palette_from_ab
from .levin import levin_colorize
from .scoring import MIN_CHROMA

SWEEP_POINTS = (0, 1, 2, 5, 10, 20, 50, 100)
SWEEP_SIDE = 256
PATCH = 6
# siggraph17's released sweep (resources/psnrs_siggraph.npy; 1000 ImageNet-val photos): PSNR in dB by hint count.
SIGGRAPH17_PSNR = {0: 24.43, 1: 25.37, 5: 27.39, 10: 28.42, 100: 31.13}

LogitsFn = Callable[[np.ndarray], np.ndarray]  # L (256, 256) -> logits (1, 313, 64, 64)


def square_lab(path: Path, side: int = SWEEP_SIDE) -> np.ndarray | None:
    """A photo centre-cropped square and resized to ``side``², as Lab (side, side, 3) float32; None if unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    h, w = bgr.shape[:2]
    s = min(h, w)
    crop = bgr[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if s > side else cv2.INTER_CUBIC)
    return rgb_to_lab(cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)


def sample_patches(ab_true: np.ndarray, n: int, rng: np.random.Generator, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """Hint patches as siggraph17's sweep draws them.

    Args:
        ab_true: (2, H, W) ground truth.
        n: number of patches.
        rng: the photo's generator.
        patch: patch side.

    Returns:
        (mask (n, H, W) bool, colour (n, 2)): patch k's pixels and mean ab.
    """
    _, H, W = ab_true.shape
    masks = np.zeros((n, H, W), bool)
    colours = np.zeros((n, 2), np.float32)
    for k in range(n):
        y = int(np.clip(rng.normal((H - patch + 1) / 2.0, (H - patch + 1) / 4.0), 0, H - patch))
        x = int(np.clip(rng.normal((W - patch + 1) / 2.0, (W - patch + 1) / 4.0), 0, W - patch))
        masks[k, y : y + patch, x : x + patch] = True
        colours[k] = ab_true[:, y : y + patch, x : x + patch].mean(axis=(1, 2))
    return masks, colours


def hints_of(masks: np.ndarray, colours: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` patches as a mask (H, W) float32 and colours (H, W, 2) (later patches win overlaps)."""
    H, W = masks.shape[1:]
    mask = np.zeros((H, W), np.float32)
    hab = np.zeros((H, W, 2), np.float32)
    for k in range(n):
        mask[masks[k]] = 1.0
        hab[masks[k]] = colours[k]
    return mask, hab


@dataclass
class _Scores:
    acc: AucAccumulator = field(default_factory=AucAccumulator)
    psnrs: list = field(default_factory=list)
    dab: list = field(default_factory=list)  # per image: mean |Δab| at hint pixels

    def add(self, L, ab, ab_true, rgb_true, mask=None, hab=None) -> None:
        self.acc.add(ab, ab_true)
        rgb = lab_to_rgb(merge_l_ab(L, ab))
        self.psnrs.append(psnr(rgb, rgb_true))
        if mask is not None and mask.any():
            got = rgb_to_lab(rgb)[..., 1:]
            self.dab.append(float(np.linalg.norm(got[mask > 0] - hab[mask > 0], axis=-1).mean()))

    def result(self) -> dict:
        return {
            "psnr": float(np.mean(self.psnrs)),
            "auc_raw": self.acc.auc_raw_per_image(),
            "auc_rebal": self.acc.auc_rebalanced(),
            "dab_at_hints": float(np.mean(self.dab)) if self.dab else None,
            "n_images": len(self.psnrs),
            "psnr_per_image": [float(v) for v in self.psnrs],
        }


def hist_distance(ab: np.ndarray, target: np.ndarray) -> float:
    """Total-variation distance between the bin histogram of ``ab`` (2, H, W) and a target (313,)."""
    h = bin_histogram(np.moveaxis(ab, 0, -1))
    return 0.5 * float(np.abs(h / h.sum() - target).sum())


def hint_sweep(
    files: list[Path],
    logits_fn: LogitsFn,
    *,
    points: tuple[int, ...] = SWEEP_POINTS,
    seed: int = 0,
    temperature: float = DEFAULT_T,
    levin: bool = True,
    palette: bool = True,
    settings: PropagationSettings = PropagationSettings(),
    progress: bool = True,
) -> dict:
    """Run the point-hint and palette sweep.

    Args:
        files: colour photos (nearly colourless ones are skipped and counted).
        logits_fn: L* (256, 256) -> the model's logits (1, 313, 64, 64) (its ab is their annealed mean).
        points: hint counts.
        seed: photo k draws its hints from ``default_rng([seed, k])``.
        temperature: the annealed-mean temperature.
        levin: also run Levin et al. 2004 (a sparse solve per photo and count).
        palette: also run the palette's oracle and wrong reference.
        settings: the propagation's knobs.
        progress: show a progress bar.

    Returns:
        ``{"points": {method: {N: scores}}, "palette": {...}, "n_images", "n_excluded", "seed"}``.
    """
    methods = ["ours"] + (["levin"] if levin else [])
    scores = {m: {n: _Scores() for n in points} for m in methods}
    pal = {k: _Scores() for k in ("none", "oracle")}
    wrong = {"tv_none": [], "tv_palette": []}
    excluded = 0
    labs = []
    for k, path in enumerate(tqdm(files, disable=not progress, desc="hint sweep")):
        lab = square_lab(path)
        if lab is None or np.abs(lab[..., 1:]).sum(-1).mean() < MIN_CHROMA:
            excluded += 1
            continue
        labs.append(lab)
        L, ab_true = lab[..., 0], np.moveaxis(lab[..., 1:], -1, 0)
        rgb_true = lab_to_rgb(lab)
        logits = logits_fn(L)
        none = palette_ab(logits, PaletteTarget(np.full(313, 1 / 313), "none"), temperature, L.shape, rounds=0)
        masks, colours = sample_patches(ab_true, max(points), np.random.default_rng([seed, k]))
        for n in points:
            mask, hab = hints_of(masks, colours, n)
            scores["ours"][n].add(L, apply_point_hints(L, none, mask, hab, settings), ab_true, rgb_true, mask, hab)
            if levin:
                scores["levin"][n].add(L, levin_colorize(L, mask, hab), ab_true, rgb_true, mask, hab)
        pal["none"].add(L, none, ab_true, rgb_true)
        if not palette:
            continue
        oracle = palette_from_ab(lab[..., 1:], "oracle", L)
        pal["oracle"].add(L, palette_ab(logits, oracle, temperature, L.shape, L=L), ab_true, rgb_true)
        if len(labs) > 1:  # the wrong reference: the previous photo's colours
            ref = palette_from_ab(labs[-2][..., 1:], "previous photo", labs[-2][..., 0])
            wrong["tv_none"].append(hist_distance(none, ref.target))
            wrong["tv_palette"].append(hist_distance(palette_ab(logits, ref, temperature, L.shape, L=L), ref.target))
    points_out = {m: {n: s.result() for n, s in per.items()} for m, per in scores.items()}
    for per in points_out.values():
        base = per[points[0]] if points[0] == 0 else None
        for r in per.values():
            if base is not None:
                r["gain_psnr"] = r["psnr"] - base["psnr"]
                r["gain_auc_raw"] = r["auc_raw"] - base["auc_raw"]
                r["gain_auc_rebal"] = r["auc_rebal"] - base["auc_rebal"]
    if not palette:
        return {"points": points_out, "palette": None, "n_images": len(labs), "n_excluded": excluded, "seed": seed}
    none_r, oracle_r = pal["none"].result(), pal["oracle"].result()
    tv_none, tv_pal = np.array(wrong["tv_none"]), np.array(wrong["tv_palette"])
    palette_out = {
        "none": none_r,
        "oracle": oracle_r,
        "oracle_gain": {k: oracle_r[k] - none_r[k] for k in ("psnr", "auc_raw", "auc_rebal")},
        "wrong_reference": {
            "tv_to_reference_without": float(tv_none.mean()) if tv_none.size else None,
            "tv_to_reference_with": float(tv_pal.mean()) if tv_pal.size else None,
            "share_moved_toward": float((tv_pal < tv_none).mean()) if tv_none.size else None,
        },
    }
    return {"points": points_out, "palette": palette_out, "n_images": len(labs), "n_excluded": excluded, "seed": seed}


def format_sweep(result: dict) -> str:
    """The sweep as a Markdown table (ours, Levin, siggraph17's anchor) and the palette figures."""
    pts = result["points"]
    lines = [
        f"{result['n_images']} photos at {SWEEP_SIDE}², {PATCH}x{PATCH} hint patches, seed {result['seed']}",
        "",
        "| N | ours PSNR | gain | AuC raw gain | AuC rebal gain | |Δab| at hints | Levin PSNR | Levin |Δab| | siggraph17 PSNR |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in pts["ours"].items():
        lv = pts.get("levin", {}).get(n)
        dab = "" if r["dab_at_hints"] is None else f"{r['dab_at_hints']:.2f}"
        lv_psnr = "" if lv is None else f"{lv['psnr']:.2f}"
        lv_dab = "" if lv is None or lv["dab_at_hints"] is None else f"{lv['dab_at_hints']:.2f}"
        anchor = SIGGRAPH17_PSNR.get(int(n))
        lines.append(
            f"| {n} | {r['psnr']:.2f} | {r.get('gain_psnr', 0):+.2f} | {r.get('gain_auc_raw', 0):+.2f} | "
            f"{r.get('gain_auc_rebal', 0):+.2f} | {dab} | {lv_psnr} | {lv_dab} | {'' if anchor is None else f'{anchor:.2f}'} |"
        )
    p = result["palette"]
    if p is None:
        return "\n".join(lines)
    g, w = p["oracle_gain"], p["wrong_reference"]
    lines += [
        "",
        f"Oracle palette: PSNR {p['none']['psnr']:.2f} -> {p['oracle']['psnr']:.2f} ({g['psnr']:+.2f} dB), "
        f"AuC raw {g['auc_raw']:+.2f}, AuC rebalanced {g['auc_rebal']:+.2f}",
    ]
    if w["tv_to_reference_without"] is not None:
        lines.append(
            f"Wrong reference (previous photo): histogram distance to it {w['tv_to_reference_without']:.3f} -> "
            f"{w['tv_to_reference_with']:.3f}; moved toward it on {100 * w['share_moved_toward']:.0f} % of photos"
        )
    return "\n".join(lines)


def model_logits_fn(model_path: str | Path | None = None, threads: int = 0) -> LogitsFn:
    """The logits of an exported classification model (default: the shipped ``default``), on ONNX Runtime's CPU.

    Raises:
        ValueError: the model has no ``logits`` output (an L2 model, an older export).
    """
    from ..runtime.backends.runners import OrtRunner, predict_logits_batch
    from ..runtime.backends.shipped_models import resolve_model

    runner = OrtRunner(model_path or resolve_model("default"), threads=threads).activate()
    if not runner.has_output("logits"):
        runner.deactivate()
        raise ValueError("no 313-bin 'logits' output (an L2 model or an older export)")
    return lambda L: predict_logits_batch(runner, np.ascontiguousarray(L, np.float32)[None, None])[1]
