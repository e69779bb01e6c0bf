"""Temporal stabilisation of per-frame ab at network resolution: colour is carried along the motion.

For each frame, DIS optical flow (OpenCV, on the network-resolution L*) maps every pixel to where it was in
the previous frame; the previous *stabilised* ab is warped there and blended into this frame's prediction,
weighted by how well the warped previous L* matches this frame's L*. The gray input is the true luminance,
so a poor match (occlusion, a new object, a flow error) is detected for free and keeps the fresh
prediction. Where the luma agrees, the colour may move by at most ``max_step`` ab units a frame (``/ w``
where it agrees less), so a network that swings from frame to frame leaks through by a bounded step, not by
a share of the swing. A frame where most of the picture no longer matches (a stricter agreement scale, ``cut_sigma``)
is a scene cut: the state restarts and the frame's output is exactly the per-frame output.

    step = (1 - carry * w) * (ab_pred - warp(ab_{t-1})),  w = exp(-(|L_t - warp(L_{t-1})| / sigma)^2)
    ab_t = warp(ab_{t-1}) + step * min(1, max_step / (w |step|))
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*


@dataclass(frozen=True)
class StabilizerSettings:
    """Knobs of ``TemporalStabilizer`` (defaults tuned on pans/zooms over the val photos; docs/video.md)."""

    carry: float = 0.92  # share of the warped previous colour kept where the luma agrees fully
    sigma: float = 24.0  # L* difference (units) at which the blend's agreement has fallen to 1/e
    cut_sigma: float = 4.0  # the scene-cut test's own agreement scale (L* units), independent of the blend's
    cut_agreement: float = 0.35  # mean cut-test agreement under this: a scene cut (restart)
    max_step: float = 1.0  # most ab units the colour moves in a frame where the luma agrees (inf: no limit)
    preset: str = "fast"  # DIS preset


class TemporalStabilizer:
    """Stateful: feed frames in order with ``step``; ``reset`` at a discontinuity (e.g. a seek)."""

    def __init__(self, settings: StabilizerSettings | None = None):
        self.settings = settings or StabilizerSettings()
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.settings.preset])
        self.reset()

    def reset(self) -> None:
        self._L8: np.ndarray | None = None
        self._Lab: np.ndarray | None = None  # (h, w, 3) float32: the previous L* and stabilised ab
        self._grid: np.ndarray | None = None  # (h, w, 2) pixel coordinates
        self.cuts = 0
        self.last_agreement = 1.0

    def step(self, L: np.ndarray, ab: np.ndarray) -> tuple[np.ndarray, bool]:
        """Stabilise one frame.

        Args:
            L: this frame's L* (h, w) float32 at network resolution.
            ab: the network's ab for it (2, h, w).

        Returns:
            (stabilised ab (2, h, w) float32, whether the state restarted here: first frame, a size
            change or a scene cut; the output then equals ``ab``).
        """
        s = self.settings
        L = np.asarray(L, np.float32)
        ab_hw2 = np.ascontiguousarray(np.moveaxis(np.asarray(ab, np.float32), 0, -1))
        L8 = np.clip(L * 2.55 + 0.5, 0, 255).astype(np.uint8)
        restart = self._L8 is None or self._L8.shape != L8.shape
        if not restart:
            flow = self._dis.calc(L8, self._L8, None)  # this frame -> previous frame
            h, w = L.shape
            if self._grid is None or self._grid.shape[:2] != (h, w):
                self._grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
            flow += self._grid  # now the source position of every pixel
            mx, my = flow[..., 0], flow[..., 1]
            inside = (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
            prev = cv2.remap(self._Lab, flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # L, a, b at once
            L_prev, ab_prev = prev[..., 0], prev[..., 1:]
            diff = np.abs(L - L_prev)
            self.last_agreement = float((np.exp(-np.square(diff / s.cut_sigma)) * inside).mean())
            agree = np.exp(-np.square(diff / s.sigma)) * inside
            if self.last_agreement < s.cut_agreement:
                restart = True
                self.cuts += 1
            else:
                step = (1.0 - s.carry * agree)[..., None] * (ab_hw2 - ab_prev)
                if np.isfinite(s.max_step):  # (w |step|)^2 over max_step^2: scale those steps down
                    lw2 = (np.square(step[..., 0]) + np.square(step[..., 1])) * np.square(agree)
                    over = lw2 > s.max_step**2
                    if over.any():
                        step[over] *= (s.max_step / np.sqrt(lw2[over]))[:, None]
                out = ab_prev + step
        if restart:
            out = ab_hw2
        self._L8, self._Lab = L8, np.dstack([L, out])
        return np.moveaxis(out, -1, 0), restart
