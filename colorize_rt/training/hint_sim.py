"""Simulated point hints for training the hint-conditioned variant (issue 30, after siggraph17's training).

A photo gets a geometric number of hints: another hint is added while a uniform draw is below ``1 - p`` (so no hint
with probability ``p``; the mean is ``(1 - p) / p``, 7 at p = 1/8). Each hint is a square patch with a side uniform in
``patch_min..patch_max`` at a Gaussian location (mean the centre, sigma a quarter of the side, clipped: richzhang/
colorization-pytorch's ``add_color_patches_rand_gt``), coloured with the ground truth's mean ab over the patch. The
sweep's hints (``eval.hint_sweep.sample_patches``) are the 6x6 case of the same draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HintSimulation:
    """How training hints are drawn.

    Args:
        p: stop probability of the geometric count (siggraph17: 1/8).
        patch_min: smallest patch side in pixels.
        patch_max: largest patch side in pixels.
        max_hints: a cap on the count (the geometric tail is long).
    """

    p: float = 0.125
    patch_min: int = 1
    patch_max: int = 9
    max_hints: int = 100

    def __post_init__(self):
        if not 0.0 < self.p <= 1.0:
            raise ValueError(f"hint p must be in (0, 1]; got {self.p}")
        if not 1 <= self.patch_min <= self.patch_max <= 64:
            raise ValueError(f"hint patch sides must satisfy 1 <= min <= max <= 64; got {self.patch_min}..{self.patch_max}")
        if not 0 <= self.max_hints <= 1000:
            raise ValueError(f"max_hints must be in 0..1000; got {self.max_hints}")


def simulate_hints(
    ab: np.ndarray, rng: np.random.Generator, sim: HintSimulation = HintSimulation()
) -> tuple[np.ndarray, np.ndarray]:
    """Draw training hints for one photo.

    Args:
        ab: (H, W, 2) ground-truth ab.
        rng: the sample's generator.
        sim: the simulation's settings.

    Returns:
        (mask (H, W) float32 with 1 at hint pixels, hint ab (H, W, 2) float32, zero off the mask); later patches win
        overlaps.
    """
    H, W = ab.shape[:2]
    mask = np.zeros((H, W), np.float32)
    hab = np.zeros((H, W, 2), np.float32)
    n = 0
    while n < sim.max_hints and rng.random() < 1.0 - sim.p:
        P = int(rng.integers(sim.patch_min, sim.patch_max + 1))
        P = min(P, H, W)
        y = int(np.clip(rng.normal((H - P + 1) / 2.0, (H - P + 1) / 4.0), 0, H - P))
        x = int(np.clip(rng.normal((W - P + 1) / 2.0, (W - P + 1) / 4.0), 0, W - P))
        mask[y : y + P, x : x + P] = 1.0
        hab[y : y + P, x : x + P] = ab[y : y + P, x : x + P].reshape(-1, 2).mean(0)
        n += 1
    return mask, hab
