"""Fit-mode colorization with point hints and/or a palette: the network at the fit size, the palette's re-weighting
of its distribution, the hints' propagation at that resolution, then the usual recombination at full size."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...core.netinput import pad_to_multiple
from ..pipeline.images import DecodedImage
from ..pipeline.modes import predict_single, prepare_fit, recombine
from .palette import palette_ab
from .propagate import PropagationSettings, apply_point_hints, hint_mask
from .spec import PaletteTarget, PointHint, check_hints

PredictLogits = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def guided_ab(
    L: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    predict_logits: PredictLogits | None,
    image_hw: tuple[int, int],
    hints: list[PointHint] | None = None,
    palette: PaletteTarget | None = None,
    temperature: float = 0.38,
    settings: PropagationSettings = PropagationSettings(),
) -> np.ndarray:
    """ab at network resolution for L* ``L`` (h, w) with hints and a palette.

    Args:
        L: (h, w) L* of the image at the fit size.
        predict: L (N, 1, H, W) -> ab (N, 2, H, W) (used when there is no palette).
        predict_logits: L -> (ab, logits (N, 313, H/4, W/4)) (needed for a palette).
        image_hw: (height, width) of the input image the hints' coordinates refer to.
        hints: point hints (input-image pixels), checked against ``image_hw``.
        palette: a palette target, or None.
        temperature: the annealed-mean temperature (for the palette's decode).
        settings: the hint propagation's knobs.

    Returns:
        (2, h, w) float32.
    """
    h, w = L.shape
    if palette is not None:
        if predict_logits is None:
            raise ValueError("a palette needs a model with the 313-bin 'logits' output")
        padded = pad_to_multiple(L)
        _, logits = predict_logits(padded[None, None])
        ab = palette_ab(logits, palette, temperature, padded.shape, L=padded)[:, :h, :w]
    else:
        ab = predict_single(predict, L)
    if hints:
        H, W = image_hw
        check_hints(hints, W, H)
        mask, hint_ab = hint_mask(hints, (h, w), (h / H, w / W))
        ab = apply_point_hints(L, ab, mask, hint_ab, settings)
    return ab


def colorize_guided(
    image: DecodedImage,
    predict: Callable[[np.ndarray], np.ndarray],
    predict_logits: PredictLogits | None,
    size: int = 256,
    hints: list[PointHint] | None = None,
    palette: PaletteTarget | None = None,
    temperature: float = 0.38,
) -> DecodedImage:
    """Fit-mode colorization of ``image`` with hints and a palette (see ``guided_ab``); same size as the input."""
    L = prepare_fit(image, size)
    return recombine(image, guided_ab(L, predict, predict_logits, (image.height, image.width), hints, palette, temperature))
