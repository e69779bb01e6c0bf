"""Training data: any folder tree of images -> random crops as (L*, ab at 1/4 resolution).

Augmentation randomness is seeded per (seed, epoch, index), so a sample is the same whichever worker
loads it: that is what makes ``--resume`` reproduce an uninterrupted run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.color import rgb_to_lab
from ..core.files import IMAGE_EXTS, list_images

log = logging.getLogger(__name__)


class ColorizationDataset(Dataset):
    def __init__(
        self,
        root: str | Path,
        crop: int = 176,
        train: bool = True,
        seed: int = 0,
        limit: int | None = None,
        scale_jitter: float = 0.0,
    ):
        if crop % 8:
            raise ValueError(f"crop must be a multiple of 8; got {crop}")
        self.files = list_images(root, limit)  # every format in core.files.IMAGE_EXTS
        if not self.files:
            raise ValueError(f"no training images ({'/'.join(sorted(e[1:] for e in IMAGE_EXTS))}) under {root}")
        self.crop, self.train, self.seed, self.scale_jitter = crop, train, seed, scale_jitter
        self.epoch = 0
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _read(self, index: int) -> np.ndarray | None:
        bgr = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if bgr is None and index not in self._warned:
            self._warned.add(index)
            log.warning("skipping unreadable image %s", self.files[index])
        return bgr

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lab, _ = self.sample_lab(index)
        return self.targets(lab)

    def sample_lab(self, index: int) -> tuple[np.ndarray, np.random.Generator]:
        """The crop of item ``index`` as Lab (crop, crop, 3) float32, and its generator (seeded per (seed, epoch,
        index); a subclass draws more from it after the crop and flip, e.g. simulated hints)."""
        for attempt in range(len(self.files)):
            bgr = self._read((index + attempt) % len(self.files))
            if bgr is not None:
                break
        else:  # pragma: no cover - every file unreadable
            raise RuntimeError("no readable images in the dataset")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.train and self.scale_jitter > 0:
            rgb = _rescale_short_side(rgb, round(self.crop * (1 + self.scale_jitter * rng.random())))
        rgb = _crop(rgb, self.crop, rng if self.train else None)
        if self.train and rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        return rgb_to_lab(rgb.astype(np.float32) / 255.0), rng

    def targets(self, lab: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(L (1, H, W), ab at 1/4 resolution (2, H/4, W/4)) of a Lab crop."""
        q = self.crop // 4
        ab_small = cv2.resize(lab[..., 1:], (q, q), interpolation=cv2.INTER_AREA)
        L = torch.from_numpy(np.ascontiguousarray(lab[None, ..., 0]))
        return L, torch.from_numpy(np.ascontiguousarray(ab_small.transpose(2, 0, 1)))


def _rescale_short_side(rgb: np.ndarray, short: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = short / min(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, (max(short, round(w * s)), max(short, round(h * s))), interpolation=interp)


def _crop(rgb: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Random (or centre, when rng is None) square crop; images smaller than ``size`` are upscaled."""
    h, w = rgb.shape[:2]
    if min(h, w) < size:
        s = size / min(h, w)
        rgb = cv2.resize(rgb, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_CUBIC)
        h, w = rgb.shape[:2]
    y = int(rng.integers(0, h - size + 1)) if rng is not None else (h - size) // 2
    x = int(rng.integers(0, w - size + 1)) if rng is not None else (w - size) // 2
    return rgb[y : y + size, x : x + size]
