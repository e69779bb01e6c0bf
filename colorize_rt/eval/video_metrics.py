"""Video metrics (``colorize-eval --video``): temporal consistency and quality of colorized clips.

A colour clip is turned gray (its L*), colorized once by the network, and the same network output is
scored per frame and stabilised (``runtime.video.stabilize``; optionally also two-pass,
``runtime.video.twopass``), beside the colour source itself and the gray input (``LUMA_FLOOR``: an output
that keeps the input's luma and has perfectly steady chroma, ab = 0, so its E_warp RGB and CDC are the part
of those metrics that no luma-keeping colorizer can remove):

* E_warp (Lai et al. 2018): mean over frame pairs of ``sum M ||V_t - warp(V_{t+1})||^2 / sum M``, with the
  flow computed on the *input* (gray) frames by Farneback's method (the stabiliser uses DIS, so the metric
  does not reward agreeing with its own flow) and ``M`` Lai's forward-backward occlusion test
  ``|F + B(x + F)|^2 <= 0.01 (|F|^2 + |B(x + F)|^2) + 0.5``. In RGB in [0, 1] (reported x 1000) and on ab
  alone (CIE ab units, squared).
* CDC (Liu et al. 2021): Jensen-Shannon divergence (natural log) of per-channel 256-bin RGB histograms of
  frames t and t + d, averaged over channels and t, then over d in {1, 2, 4}. Pairs (t, t + d) that straddle
  a scene cut are left out, as for E_warp and for every rendering alike (the cuts are found on the source);
  ``cdc_all`` is the same over every pair, cuts included.
* Against the source: PSNR, the paper's AuC raw and rebalanced (``core.metrics``), and colourfulness
  (Hasler & Suesstrunk 2003).

Frames are scored at most ``METRIC_SIDE`` pixels on the longer side (AuC at ``AUC_SIDE``) to keep the flow
affordable on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..core.metrics import AucAccumulator, psnr
from ..runtime.pipeline.images import DecodedImage, gray3
from ..runtime.pipeline.modes import fit_shape, prepare_fit
from ..runtime.video.io import describe, frame_gray, open_input, read_items
from ..runtime.video.job import VideoOptions, look_ahead_inputs, recombine_frame
from ..runtime.video.stabilize import StabilizerSettings, TemporalStabilizer
from ..runtime.video.twopass import TwoPassColour

METRIC_SIDE = 480
AUC_SIDE = 256
CDC_STEPS = (1, 2, 4)
MIN_VISIBLE = 0.5  # frame pairs with less of the picture passing the occlusion test are cuts: not in E_warp ...
MAX_SOURCE_DL = 10.0  # ... nor pairs whose source L* differs by more than this (mean, visible pixels) after warping
SOURCE = "source"
LUMA_FLOOR = "gray input"


def farneback_flow(a8: np.ndarray, b8: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) from gray ``a8`` to ``b8`` (uint8): ``a(x) ~ b(x + flow(x))``."""
    return cv2.calcOpticalFlowFarneback(a8, b8, None, 0.5, 4, 15, 3, 5, 1.2, 0)


def warp_by_flow(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img`` (H, W[, C]) sampled at ``x + flow(x)`` (bilinear, border replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def non_occluded(fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Lai et al.'s forward-backward consistency mask (H, W) bool: True where the pixel is visible in both
    frames (and its forward flow stays inside the frame)."""
    bw_at = warp_by_flow(bw, fw)
    h, w = fw.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + fw[..., 0], gy + fw[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    lhs = np.square(fw + bw_at).sum(-1)
    rhs = 0.01 * (np.square(fw).sum(-1) + np.square(bw_at).sum(-1)) + 0.5
    return (lhs <= rhs) & inside


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk's colourfulness of sRGB uint8 (H, W, 3)."""
    f = rgb.astype(np.float32)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (nats) of two histograms (normalised here)."""
    p = np.asarray(p, np.float64) / max(float(np.sum(p)), 1e-12)
    q = np.asarray(q, np.float64) / max(float(np.sum(q)), 1e-12)
    m = 0.5 * (p + q)
    kl_p = (p[p > 0] * np.log(p[p > 0] / m[p > 0])).sum()
    kl_q = (q[q > 0] * np.log(q[q > 0] / m[q > 0])).sum()
    return float(0.5 * kl_p + 0.5 * kl_q)


def _lab(rgb8: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb8.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


class VideoScorer:
    """Scores several renderings of one clip frame by frame (streaming: holds two frames and histograms).

    Args:
        names: the renderings' names (the colour source is scored too, as ``"source"``).
    """

    def __init__(self, names: list[str]):
        self.names = [*names, SOURCE]
        self.ewarp = {n: {"rgb": [], "ab": []} for n in self.names}
        self.hists = {n: [] for n in self.names}
        self.psnr = {n: [] for n in names}
        self.colour = {n: [] for n in self.names}
        self.auc = {n: AucAccumulator() for n in names}
        self._prev: dict | None = None
        self.frames = 0
        self.cut_pairs = 0
        self.cuts_at: list[int] = []  # frames that begin a new shot (the pair (t - 1, t) is a cut)

    def add(self, source_rgb: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """One frame: the colour source (H, W, 3) uint8 and each rendering (same shape)."""
        h, w = fit_shape(*source_rgb.shape[:2], min(METRIC_SIDE, max(source_rgb.shape[:2])))
        small = {n: cv2.resize(v, (w, h), interpolation=cv2.INTER_AREA) for n, v in {**outputs, SOURCE: source_rgb}.items()}
        lab = {n: _lab(v) for n, v in small.items()}
        gray8 = np.clip(lab[SOURCE][..., 0] * 2.55 + 0.5, 0, 255).astype(np.uint8)
        ah, aw = fit_shape(h, w, min(AUC_SIDE, max(h, w)))
        ab_true = np.moveaxis(cv2.resize(lab[SOURCE][..., 1:], (aw, ah), interpolation=cv2.INTER_AREA), -1, 0)
        for n in self.names:
            self.hists[n].append(np.stack([np.bincount(small[n][..., c].ravel(), minlength=256) for c in range(3)]))
            self.colour[n].append(colourfulness(small[n]))
            if n != SOURCE:
                self.psnr[n].append(psnr(small[n] / 255.0, small[SOURCE] / 255.0))
                ab = np.moveaxis(cv2.resize(lab[n][..., 1:], (aw, ah), interpolation=cv2.INTER_AREA), -1, 0)
                self.auc[n].add(ab, ab_true)
        if self._prev is not None:
            prev_gray, prev_small, prev_lab = self._prev["gray"], self._prev["small"], self._prev["lab"]
            fw, bw = farneback_flow(prev_gray, gray8), farneback_flow(gray8, prev_gray)
            mask = non_occluded(fw, bw)
            total = max(int(mask.sum()), 1)
            L_w = warp_by_flow(np.ascontiguousarray(lab[SOURCE][..., 0]), fw)
            dL = float((np.abs(prev_lab[SOURCE][..., 0] - L_w) * mask).sum() / total)
            cut = bool(mask.mean() < MIN_VISIBLE or dL > MAX_SOURCE_DL)  # a scene cut: no motion links the frames
            self.cut_pairs += cut
            if cut:
                self.cuts_at.append(self.frames)
            for n in () if cut else self.names:
                rgb_t = prev_small[n].astype(np.float32) / 255.0
                rgb_w = warp_by_flow(small[n].astype(np.float32) / 255.0, fw)
                ab_w = warp_by_flow(np.ascontiguousarray(lab[n][..., 1:]), fw)
                self.ewarp[n]["rgb"].append(float((np.square(rgb_t - rgb_w).sum(-1) * mask).sum() / total))
                self.ewarp[n]["ab"].append(float((np.square(prev_lab[n][..., 1:] - ab_w).sum(-1) * mask).sum() / total))
        self._prev = {"gray": gray8, "small": small, "lab": lab}
        self.frames += 1

    def cdc_pairs(self, d: int, across_cuts: bool = False) -> list[int]:
        """The first frames t of the CDC pairs (t, t + d) scored.

        Args:
            d: the step.
            across_cuts: also the pairs that straddle a cut (``cdc_all``).

        Returns:
            Every t in [0, frames - d), less those with a cut in (t, t + d] unless ``across_cuts``.
        """
        return [t for t in range(self.frames - d) if across_cuts or not any(t < b <= t + d for b in self.cuts_at)]

    def cdc(self, name: str, across_cuts: bool = False) -> float:
        """CDC of one rendering: the mean over d in ``CDC_STEPS`` of the mean over ``cdc_pairs(d)`` of the
        channel-mean JS divergence (nan where no pair is left)."""
        hists = self.hists[name]
        per_d = []
        for d in CDC_STEPS:
            pairs = self.cdc_pairs(d, across_cuts)
            if pairs:
                per_d.append(np.mean([np.mean([js_divergence(hists[t][c], hists[t + d][c]) for c in range(3)]) for t in pairs]))
        return float(np.mean(per_d)) if per_d else float("nan")

    def cdc_pairs_left_out(self) -> int:
        """How many CDC pairs (over every d) straddle a cut and are left out of ``cdc``."""
        return sum(len(self.cdc_pairs(d, True)) - len(self.cdc_pairs(d)) for d in CDC_STEPS)

    def summary(self) -> dict:
        """Returns: ``{name: {ewarp_rgb_x1000, ewarp_ab, cdc, cdc_all, psnr, auc_raw, auc_rebal, colourfulness}}``
        (``cdc``: cut pairs left out; ``cdc_all``: every pair)."""
        out = {}
        for n in self.names:
            m = {
                "ewarp_rgb_x1000": 1000.0 * float(np.mean(self.ewarp[n]["rgb"])) if self.ewarp[n]["rgb"] else float("nan"),
                "ewarp_ab": float(np.mean(self.ewarp[n]["ab"])) if self.ewarp[n]["ab"] else float("nan"),
                "cdc": self.cdc(n),
                "cdc_all": self.cdc(n, across_cuts=True),
                "colourfulness": float(np.mean(self.colour[n])),
            }
            if n != SOURCE:
                m |= {
                    "psnr": float(np.mean(self.psnr[n])),
                    "auc_raw": self.auc[n].auc_raw(),
                    "auc_rebal": self.auc[n].auc_rebalanced(),
                }
            out[n] = m
        return out


def score_video(
    path: str | Path,
    colorizer,
    *,
    size: int = 256,
    temperature: float | None = None,
    max_frames: int = 0,
    settings: StabilizerSettings | None = None,
    two_pass: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Turn a colour clip gray, colorize it, and score per-frame, stabilised (and two-pass), the source and
    the gray input (the luma floor).

    Args:
        path: a colour video.
        colorizer: an open ``runtime.api.Colorizer``.
        size: network input size.
        temperature: annealed-mean temperature (None: the model's).
        max_frames: score at most this many frames (0 = all).
        settings: the stabiliser's settings (default: the job's).
        two_pass: also score the two-pass mode (a second decode runs the network again, one window ahead).
        progress: called with the number of frames done.

    Returns:
        ``{"clip", "frames", "width", "height", "methods": VideoScorer.summary(), "floor": luma_floor(...),
        "seconds": {...}}``.
    """
    path = Path(path)
    renderings = ["per-frame", "stabilised", *(["two-pass"] if two_pass else []), LUMA_FLOOR]
    scorer = VideoScorer(renderings)
    stab = TemporalStabilizer(settings)
    seconds = {"network": 0.0, "stabilize": 0.0, "two-pass": 0.0}
    boxes: list = []
    two = None
    if two_pass:
        ahead = look_ahead_inputs(path, VideoOptions(size=size), boxes)
        two = TwoPassColour(ahead, lambda L: colorizer.infer_fit(L, temperature), settings)
    container = open_input(path)
    try:
        info = describe(path, container)
        for kind, frame in read_items(container, info):
            if kind != "frame":
                continue
            src = frame.reformat(format="rgb24", src_color_range=frame.color_range or None, dst_color_range="JPEG").to_ndarray()
            gray = frame_gray(frame)
            L_small = prepare_fit(DecodedImage(gray3(gray), gray=True), size)
            t0 = time.perf_counter()
            ab = colorizer.infer_fit(L_small, temperature)
            t1 = time.perf_counter()
            ab_st, _ = stab.step(L_small, ab)
            seconds["network"] += t1 - t0
            seconds["stabilize"] += time.perf_counter() - t1
            abs_ = {"per-frame": ab, "stabilised": ab_st}
            if two is not None:
                t0 = time.perf_counter()
                abs_["two-pass"] = two.ab(scorer.frames)
                seconds["two-pass"] += time.perf_counter() - t0
            outs = {LUMA_FLOOR: np.repeat(gray[..., None], 3, 2)}
            for name, a in abs_.items():
                px, bgr = recombine_frame(gray, a)
                outs[name] = px[..., ::-1] if bgr else px
            scorer.add(src, outs)
            if progress is not None:
                progress(scorer.frames)
            if max_frames and scorer.frames >= max_frames:
                break
    finally:
        container.close()
        if two is not None:
            two.close()
        for c in boxes:
            c.close()
    methods = scorer.summary()
    return {
        "clip": str(path),
        "frames": scorer.frames,
        "width": info.width,
        "height": info.height,
        "cuts": stab.cuts,
        "pairs_left_out": scorer.cut_pairs,
        "cdc_pairs_left_out": scorer.cdc_pairs_left_out(),
        "methods": methods,
        "floor": luma_floor(methods),
        "seconds": seconds,
    }


def luma_floor(methods: dict) -> dict:
    """How much of per-frame's E_warp RGB and CDC any output that keeps the input's luma can remove.

    The floor is the lower of the gray input's figure (ab = 0: chroma perfectly steady) and the colour
    source's (real, steady chroma). Both metrics are in RGB and so include the luma, which is kept. For
    E_warp RGB (squared differences, about luma plus chroma) it is a floor in practice; for CDC it is only
    an indication, since histogram divergence does not split into a luma and a chroma part (a coloured
    output can score below the gray input).

    Args:
        methods: ``VideoScorer.summary()`` with ``"per-frame"``, ``SOURCE`` and ``LUMA_FLOOR``.

    Returns:
        ``{"ewarp_rgb_x1000": {...}, "cdc": {...}}``, each ``{"floor", "per_frame", "best_reduction"}``:
        ``best_reduction`` = 1 - floor / per-frame, the largest reduction attainable with the luma kept
        (under 0.5: a 50 % reduction is out of reach).
    """
    out = {}
    for key in ("ewarp_rgb_x1000", "cdc"):
        floor = min(methods[LUMA_FLOOR][key], methods[SOURCE][key])
        pf = methods["per-frame"][key]
        out[key] = {"floor": floor, "per_frame": pf, "best_reduction": 1.0 - floor / pf if pf > 0 else float("nan")}
    return out


def format_video_table(result: dict) -> str:
    """A text table of ``score_video``'s result, one row per rendering."""
    head = f"{'':<11} {'Ewarp RGB':>9} {'Ewarp ab':>9} {'CDC':>7} {'PSNR':>6} {'AuC raw':>7} {'AuC reb':>7} {'colourf':>7}"
    size = f"{result['frames']} frames {result['width']}x{result['height']}"
    cuts = (
        f"{result['cuts']} cuts found by the stabiliser, {result.get('pairs_left_out', 0)} pairs left out of E_warp "
        f"and {result.get('cdc_pairs_left_out', 0)} of CDC (cuts)"
    )
    lines = [f"{result['clip']}: {size}; {cuts}", head]
    for name, m in result["methods"].items():
        lines.append(
            f"{name:<11} {m['ewarp_rgb_x1000']:9.3f} {m['ewarp_ab']:9.3f} {m['cdc']:7.4f} {m.get('psnr', float('nan')):6.2f} "
            f"{m.get('auc_raw', float('nan')):7.2f} {m.get('auc_rebal', float('nan')):7.2f} {m['colourfulness']:7.2f}"
        )
    lines.append(
        "Ewarp RGB: x 1000, RGB in [0, 1]; Ewarp ab: CIE ab units squared; CDC: JSD (nats), d in {1, 2, 4}, "
        "pairs across a cut left out"
    )
    if result.get("cdc_pairs_left_out"):
        every = ", ".join(f"{n} {m['cdc_all']:.4f}" for n, m in result["methods"].items())
        lines.append(f"CDC over every pair, cuts included: {every}")
    floor = result.get("floor")
    if floor:
        rgb, cdc = floor["ewarp_rgb_x1000"], floor["cdc"]
        lines.append(
            f"luma floor (min of gray input and source): Ewarp RGB {rgb['floor']:.3f}, CDC {cdc['floor']:.4f}; "
            f"the most any luma-keeping output can cut from per-frame: Ewarp RGB {100 * rgb['best_reduction']:.0f} % "
            f"(CDC: {100 * cdc['best_reduction']:.0f} %, indicative only)"
        )
    return "\n".join(lines)
