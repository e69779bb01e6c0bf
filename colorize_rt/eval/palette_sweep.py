"""The palette's oracle and wrong-reference measurement (issue 30), on its own (``colorize-eval --palette-sweep``).

Each photo is centre-cropped square and resized to 256² (as the hint sweep, ``eval.hint_sweep.square_lab``). Per
palette setting:

* **oracle**: the photo's own colours as the palette (``palette_from_ab`` of its ab and L*, so with per-band
  targets unless the setting is global); PSNR, raw AuC (mean of per-image AuCs, the paper's) and rebalanced AuC
  (by the set's own bins), each as the gain over the same model with no palette;
* **wrong reference**: the previous photo's colours; the total-variation distance of the output's 313-bin
  histogram to that reference's, without and with the palette, and the share of photos it moved toward.

Per-photo rows are kept (``rows``) so that any subset (e.g. the even and odd halves) can be scored again with
``summarize_rows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.color import lab_to_rgb, merge_l_ab
from ..core.constants import DEFAULT_T
from ..core.metrics import AucAccumulator, auc_of_counts, psnr
from ..runtime.guidance.palette import PALETTE_SHARPEN, palette_ab
from ..runtime.guidance.spec import PaletteTarget, palette_from_ab
from .hint_sweep import LogitsFn, hist_distance, square_lab
from .scoring import MIN_CHROMA


@dataclass(frozen=True)
class PaletteSetting:
    """One way to apply a palette: per-L* band targets or one global target, and the temperature ratio."""

    name: str
    bands: bool = True
    sharpen: float = PALETTE_SHARPEN


SHIPPED_PALETTE = PaletteSetting("shipped: 6 L* bands, T x 0.66")
SETTINGS = (
    SHIPPED_PALETTE,
    PaletteSetting("global, T x 0.66", bands=False),
    PaletteSetting("6 L* bands, plain T", sharpen=1.0),
    PaletteSetting("global, plain T (before)", bands=False, sharpen=1.0),
)


def _target(lab: np.ndarray, label: str, bands: bool) -> PaletteTarget:
    p = palette_from_ab(lab[..., 1:], label, lab[..., 0])
    return p if bands else PaletteTarget(p.target, label)


def _row(lab: np.ndarray, ab: np.ndarray) -> dict:
    """One output's scores: its (313, 152) AuC counts and its PSNR."""
    acc = AucAccumulator()
    joint = acc.add(ab, np.moveaxis(lab[..., 1:], -1, 0))
    return {"joint": joint, "psnr": psnr(lab_to_rgb(merge_l_ab(lab[..., 0], ab)), lab_to_rgb(lab))}


def summarize_rows(rows: Sequence[dict]) -> dict:
    """Scores of a set of per-photo rows (``{"joint", "psnr"}``): mean PSNR, raw (per image) and rebalanced AuC (NaN
    for no rows)."""
    if not rows:
        return {"psnr": float("nan"), "auc_raw": float("nan"), "auc_rebal": float("nan"), "n_images": 0}
    hist = np.sum([r["joint"] for r in rows], axis=0)
    per_bin = hist.sum(1)
    w = np.where(per_bin > 0, 1.0 / np.maximum(per_bin, 1e-12), 0.0)
    return {
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "auc_raw": float(np.mean([auc_of_counts(r["joint"].sum(0)) for r in rows])),
        "auc_rebal": float(auc_of_counts((hist * w[:, None]).sum(0))),
        "n_images": len(rows),
    }


def palette_gains(none_rows: Sequence[dict], rows: Sequence[dict]) -> dict:
    """A setting's gains over no palette on the same photos (PSNR dB, raw and rebalanced AuC points)."""
    a, b = summarize_rows(none_rows), summarize_rows(rows)
    return {k: b[k] - a[k] for k in ("psnr", "auc_raw", "auc_rebal")} | {"n_images": a["n_images"]}


def palette_sweep(
    files: list[Path],
    logits_fn: LogitsFn,
    *,
    settings: Sequence[PaletteSetting] = SETTINGS,
    temperature: float = DEFAULT_T,
    progress: bool = True,
) -> dict:
    """Oracle and wrong-reference palettes over ``files``.

    Args:
        files: colour photos (nearly colourless or unreadable ones are skipped and counted).
        logits_fn: L* (256, 256) -> the model's logits (1, 313, 64, 64).
        settings: the palette settings to compare.
        temperature: the plain decode's temperature.
        progress: show a progress bar.

    Returns:
        ``{"none": rows, "oracle": {setting: rows}, "wrong": {setting: {"tv_none", "tv_palette"}}, "names",
        "n_excluded"}`` (rows: one ``{"joint", "psnr"}`` per photo, in ``names`` order).
    """
    out = {
        "none": [],
        "oracle": {s.name: [] for s in settings},
        "wrong": {s.name: {"tv_none": [], "tv_palette": []} for s in settings},
    }
    names, excluded, previous = [], 0, None
    for path in tqdm(files, disable=not progress, desc="palette sweep"):
        lab = square_lab(path)
        if lab is None or np.abs(lab[..., 1:]).sum(-1).mean() < MIN_CHROMA:
            excluded += 1
            continue
        names.append(Path(path).name)
        L = lab[..., 0]
        logits = logits_fn(L)
        none = palette_ab(logits, PaletteTarget(np.full(313, 1 / 313), "none"), temperature, L.shape, rounds=0)
        out["none"].append(_row(lab, none))
        for s in settings:
            oracle = _target(lab, "oracle", s.bands)
            ab = palette_ab(logits, oracle, temperature, L.shape, L=L, sharpen=s.sharpen)
            out["oracle"][s.name].append(_row(lab, ab))
            if previous is not None:
                ref = _target(previous, "previous photo", s.bands)
                moved = palette_ab(logits, ref, temperature, L.shape, L=L, sharpen=s.sharpen)
                out["wrong"][s.name]["tv_none"].append(hist_distance(none, ref.target))
                out["wrong"][s.name]["tv_palette"].append(hist_distance(moved, ref.target))
        previous = lab
    out["names"], out["n_excluded"] = names, excluded
    return out


def palette_report(result: dict) -> dict:
    """The sweep's figures: per setting, the oracle's gains on all photos and on the even / odd halves, and the
    wrong reference's distances (JSON-ready)."""
    none = result["none"]
    halves = {"all": slice(None), "even": slice(0, None, 2), "odd": slice(1, None, 2)}
    rep = {"n_images": len(none), "n_excluded": result["n_excluded"], "none": summarize_rows(none), "settings": {}}
    for name, rows in result["oracle"].items():
        tv_none = np.array(result["wrong"][name]["tv_none"])
        tv_pal = np.array(result["wrong"][name]["tv_palette"])
        rep["settings"][name] = {
            "oracle": summarize_rows(rows),
            "oracle_gain": {h: palette_gains(none[s], rows[s]) for h, s in halves.items()},
            "wrong_reference": {
                "tv_to_reference_without": float(tv_none.mean()) if tv_none.size else None,
                "tv_to_reference_with": float(tv_pal.mean()) if tv_pal.size else None,
                "share_moved_toward": float((tv_pal < tv_none).mean()) if tv_none.size else None,
            },
        }
    return rep


def format_report(rep: dict) -> str:
    """The report as a Markdown table."""
    lines = [
        f"{rep['n_images']} photos at 256² ({rep['n_excluded']} excluded); no palette: PSNR {rep['none']['psnr']:.2f}, "
        f"AuC raw {rep['none']['auc_raw']:.2f}, rebalanced {rep['none']['auc_rebal']:.2f}",
        "",
        "| setting | oracle PSNR gain | AuC raw gain | AuC rebal gain | even half (dB / rebal) | odd half (dB / rebal) "
        "| wrong ref.: TV without -> with | moved toward |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in rep["settings"].items():
        g, w = s["oracle_gain"], s["wrong_reference"]
        tv = (
            ""
            if w["tv_to_reference_without"] is None
            else f"{w['tv_to_reference_without']:.3f} -> {w['tv_to_reference_with']:.3f}"
        )
        moved = "" if w["share_moved_toward"] is None else f"{100 * w['share_moved_toward']:.0f} %"
        lines.append(
            f"| {name} | {g['all']['psnr']:+.2f} dB | {g['all']['auc_raw']:+.2f} | {g['all']['auc_rebal']:+.2f} | "
            f"{g['even']['psnr']:+.2f} / {g['even']['auc_rebal']:+.2f} | {g['odd']['psnr']:+.2f} / {g['odd']['auc_rebal']:+.2f} "
            f"| {tv} | {moved} |"
        )
    return "\n".join(lines)
