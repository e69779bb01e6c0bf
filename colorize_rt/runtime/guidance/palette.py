"""A palette applied to a prediction (training-free): each pixel's 313-bin distribution is re-weighted by per-bin
weights, fitted so the average distribution matches the palette's target (iterative proportional fitting,
``core.decode.palette_log_weights``), then decoded with the annealed mean and upsampled x4 bilinearly exactly as the
exported graph's decode head does.

A reference photo's palette has one target per L* band (``spec.PaletteTarget.bands``): the pixels of each band of
the image are fitted, on their own, toward the reference's colours at that lightness (the joint distribution of ab
given L*). A colour list has no lightness: one fit over all pixels. Fitting and decoding run at a sharper
temperature than the plain decode (``PALETTE_SHARPEN`` times it): with the colours pinned by the reference, a sharper
decode keeps them saturated instead of averaging them toward brown."""

from __future__ import annotations

import cv2
import numpy as np

from ...core.decode import PALETTE_ROUNDS, annealed_mean, palette_log_weights
from .spec import PaletteTarget, band_of

PALETTE_SHARPEN = 0.66  # palette temperature / plain temperature (0.38 -> 0.25), chosen on 70 training photos


def palette_weights(
    logits: np.ndarray, palette: PaletteTarget, temperature: float, L: np.ndarray | None = None, rounds: int = PALETTE_ROUNDS
) -> np.ndarray:
    """Log-weights per bin and pixel for one image.

    Args:
        logits: (1, 313, h, w) the network's logits.
        palette: the target (with per-band targets or not).
        temperature: the temperature the fit (and the decode) runs at.
        L: (4h, 4w) L* of the network input (needed for per-band targets; None fits one set of weights).
        rounds: proportional-fitting rounds.

    Returns:
        (313, h, w) float32 on the ``logits / temperature`` scale, or (313, 1, 1) for one global fit.
    """
    logits = np.asarray(logits, np.float32)
    if palette.bands is None or L is None:
        return palette_log_weights(logits, palette.target, temperature, rounds).astype(np.float32)[:, None, None]
    _, nb, h, w = logits.shape
    small = cv2.resize(np.asarray(L, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    band = band_of(small).ravel()
    pixels = np.moveaxis(logits[0], 0, -1).reshape(-1, nb)
    out = np.zeros((h * w, nb), np.float32)
    for k in np.unique(band):
        sel = band == k  # the band's pixels, fitted as (P, 313, 1, 1): each pixel pooled once
        out[sel] = palette_log_weights(pixels[sel][:, :, None, None], palette.bands[k], temperature, rounds)
    return np.moveaxis(out.reshape(h, w, nb), -1, 0)


def palette_ab(
    logits: np.ndarray,
    palette: PaletteTarget,
    temperature: float,
    out_hw: tuple[int, int],
    rounds: int = PALETTE_ROUNDS,
    L: np.ndarray | None = None,
    sharpen: float = PALETTE_SHARPEN,
) -> np.ndarray:
    """ab of one image under a palette.

    Args:
        logits: (1, 313, h, w) the network's logits (the export's ``logits`` output) for the padded input.
        palette: the target distribution.
        temperature: the plain decode's temperature (the palette fits and decodes at ``sharpen`` times it).
        out_hw: (H, W) of the network input the logits came from (4h x 4w).
        rounds: proportional-fitting rounds (0: the plain decode, bit for bit the graph's).
        L: (H, W) L* of the network input, for a palette with per-band targets (None: one global fit).
        sharpen: the palette's temperature over the plain one (1: the plain temperature).

    Returns:
        (2, H, W) float32.
    """
    logits = np.asarray(logits, np.float32)
    if rounds == 0:
        ab = annealed_mean(logits, temperature)[0]
    else:
        if not 0.0 < sharpen <= 1.0:
            raise ValueError(f"sharpen must be in (0, 1]; got {sharpen}")
        t = float(temperature) * sharpen
        w = palette_weights(logits, palette, t, L, rounds)
        ab = annealed_mean(logits + np.float32(t) * w[None], t)[0]
    H, W = out_hw
    return np.stack([cv2.resize(c, (W, H), interpolation=cv2.INTER_LINEAR) for c in ab])
