"""Parsing and validation of point hints and palettes: ONE place for the CLI, the library API, the HTTP API and the UI.

A hint is ``(x, y)`` in the input image's pixel coordinates (0 <= x < width, 0 <= y < height), a colour and a
radius in input pixels (0: the one network pixel under the point). A palette is a reference photo's colours or a
list of ``#rrggbb`` colours. Every mistake raises :class:`GuidanceError` with one line naming what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

from ...core.color import rgb_to_lab
from ...core.constants import NUM_BINS
from ...core.prior import bin_histogram, palette_target
from ..limits import HINT_COUNT, HINT_RADIUS, PALETTE_COLOURS, ParameterError

_HEX = re.compile(r"#?([0-9a-fA-F]{6})")
_KEYS = {"x", "y", "color", "radius"}


class GuidanceError(ValueError):
    """A hint or palette that cannot be used; the message is one line."""


@dataclass(frozen=True)
class PointHint:
    """One point hint: centre ``(x, y)`` in input pixels, colour as CIE ``(a, b)``, radius in input pixels."""

    x: float
    y: float
    ab: tuple[float, float]
    radius: float = 0.0

    def key(self) -> str:
        """Returns: a canonical text form (for cache keys)."""
        return f"{self.x:.3f},{self.y:.3f},{self.ab[0]:.3f},{self.ab[1]:.3f},{self.radius:.3f}"


def hex_to_ab(text: str) -> tuple[float, float]:
    """``#rrggbb`` (the ``#`` optional) -> CIE (a, b) of that sRGB colour.

    Raises:
        GuidanceError: not six hex digits.
    """
    m = _HEX.fullmatch(str(text).strip())
    if not m:
        shown = str(text)[:20]
        raise GuidanceError(f"colour must be #rrggbb (six hex digits); got {shown!r}")
    rgb = np.array([int(m.group(1)[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0
    lab = rgb_to_lab(rgb)
    return float(lab[1]), float(lab[2])


def _number(value, what: str) -> float:
    if isinstance(value, bool):
        raise GuidanceError(f"hint {what} must be a number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GuidanceError(f"hint {what} must be a number; got {str(value)[:20]!r}") from None
    if not math.isfinite(number):
        raise GuidanceError(f"hint {what} must be a finite number; got {value!r}")
    return number


def make_hint(x, y, color: str, radius=0.0) -> PointHint:
    """One hint from its parts (numbers may be strings).

    Raises:
        GuidanceError: a coordinate that is not a finite number, a malformed colour, a radius outside 0..4096 or NaN.
    """
    try:
        r = HINT_RADIUS.check(radius)
    except ParameterError as exc:
        raise GuidanceError(str(exc)) from None
    return PointHint(_number(x, "x"), _number(y, "y"), hex_to_ab(color), float(r))


def parse_hint(text: str) -> PointHint:
    """``X,Y,#RRGGBB[,R]`` (the CLI's ``--hint``) -> a hint.

    Raises:
        GuidanceError: not 3 or 4 comma-separated fields, or a bad field.
    """
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (3, 4):
        raise GuidanceError(f"a hint is X,Y,#RRGGBB[,RADIUS]; got {str(text)[:40]!r}")
    return make_hint(*parts)


def hints_from_json(data) -> list[PointHint]:
    """A JSON list of ``{"x", "y", "color", "radius"?}`` objects (text or already parsed) -> hints.

    Raises:
        GuidanceError: not JSON, not a list of such objects, unknown keys, more than 1,000 hints, a bad field.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise GuidanceError("hints must be a JSON list of {x, y, color, radius} objects; got invalid JSON") from None
    if not isinstance(data, list):
        raise GuidanceError(f"hints must be a JSON list of objects; got {type(data).__name__}")
    check_hint_count(len(data))
    hints = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not {"x", "y", "color"} <= set(item) or set(item) - _KEYS:
            raise GuidanceError(f"hint {i}: needs keys x, y, color (and optionally radius), nothing else; got {str(item)[:60]}")
        try:
            hints.append(make_hint(item["x"], item["y"], item["color"], item.get("radius", 0.0)))
        except GuidanceError as exc:
            raise GuidanceError(f"hint {i}: {exc}") from None
    return hints


def check_hint_count(n: int) -> None:
    """Raises: GuidanceError: more hints than ``HINT_COUNT`` allows (1,000)."""
    if n > HINT_COUNT.hi:
        raise GuidanceError(f"at most {int(HINT_COUNT.hi):,} hints per image; got {n:,}")


def check_hints(hints: list[PointHint], width: int, height: int) -> list[PointHint]:
    """Refuse hints outside the image (or too many of them).

    Args:
        hints: parsed hints.
        width: the input image's width in pixels.
        height: its height.

    Returns:
        ``hints`` unchanged.

    Raises:
        GuidanceError: a hint outside ``0 <= x < width``, ``0 <= y < height``, or more than 1,000 hints.
    """
    check_hint_count(len(hints))
    for i, h in enumerate(hints):
        if not (0 <= h.x < width and 0 <= h.y < height):
            raise GuidanceError(f"hint {i} at ({h.x:g}, {h.y:g}) is outside the {width}x{height} image")
    return hints


PALETTE_BANDS = 6  # equal-width L* bands of a reference photo's per-band palettes (0..100 / 6)
PALETTE_BAND_MIN_SHARE = 0.02  # a band with fewer of the reference's pixels falls back to the whole palette


@dataclass(frozen=True)
class PaletteTarget:
    """A palette as the target distribution over the 313 ab bins (smoothed with a uniform share), and where it came
    from (for messages and cache keys). A reference photo's palette also has one target per L* band
    (``PALETTE_BANDS`` equal-width bands of 0..100): the joint distribution of ab given lightness, so dark pixels
    are fitted toward the reference's dark colours; a colour list has none (no lightness)."""

    target: np.ndarray
    label: str
    bands: np.ndarray | None = None  # (PALETTE_BANDS, 313) or None

    def key(self) -> str:
        """Returns: a digest of the target and the band targets (for cache keys)."""
        import hashlib

        digest = hashlib.sha256(np.ascontiguousarray(self.target, np.float64).tobytes())
        if self.bands is not None:
            digest.update(np.ascontiguousarray(self.bands, np.float64).tobytes())
        return digest.hexdigest()[:24]


def band_of(L: np.ndarray, bands: int = PALETTE_BANDS) -> np.ndarray:
    """The L* band index (0..bands-1) of each lightness value: equal-width bands of 0..100, clipped.

    Args:
        L: L* values, any shape.
        bands: number of bands.

    Returns:
        int64 array of L's shape.
    """
    return np.clip((np.asarray(L, np.float64) * (bands / 100.0)).astype(np.int64), 0, bands - 1)


def palette_from_ab(ab: np.ndarray, label: str = "ab", L: np.ndarray | None = None) -> PaletteTarget:
    """A palette from ab values (..., 2): their 313-bin histogram, smoothed; with their lightness ``L`` (...) also
    one histogram per L* band (a band with under 2 % of the pixels gets the whole histogram).

    Raises:
        GuidanceError: no pixels, or no colour at all (every pixel gray: a gray reference has no palette).
    """
    ab = np.asarray(ab, np.float32).reshape(-1, 2)
    if ab.size == 0:
        raise GuidanceError("the palette is empty")
    chroma = np.hypot(ab[:, 0], ab[:, 1])
    if float(np.percentile(chroma, 99)) < 2.0:
        raise GuidanceError(f"the palette {label} has no colour (a gray image?)")
    counts = bin_histogram(ab)
    target = palette_target(counts)
    if L is None:
        return PaletteTarget(target, label)
    band = band_of(np.asarray(L).reshape(-1))
    if band.size != len(ab):
        raise ValueError(f"L has {band.size} values for {len(ab)} ab pixels")
    from ...core.bins import nearest_bins

    idx = nearest_bins(ab, 1)[0][:, 0]
    joint = np.bincount(band * NUM_BINS + idx, minlength=PALETTE_BANDS * NUM_BINS).reshape(PALETTE_BANDS, NUM_BINS)
    enough = joint.sum(1) >= PALETTE_BAND_MIN_SHARE * len(ab)
    bands = np.stack([palette_target(joint[k].astype(np.float64)) if enough[k] else target for k in range(PALETTE_BANDS)])
    return PaletteTarget(target, label, bands)


def palette_from_colors(text: str) -> PaletteTarget:
    """``"#hex,#hex,..."`` -> a palette where the listed colours are equally likely.

    Raises:
        GuidanceError: an empty list, a malformed colour, more than 1,000 colours.
    """
    items = [c.strip() for c in str(text).split(",") if c.strip()]
    if not items:
        raise GuidanceError("the palette is empty: give a reference image or colours like '#aa3311,#2266cc'")
    if len(items) > PALETTE_COLOURS.hi:
        raise GuidanceError(f"at most {int(PALETTE_COLOURS.hi):,} palette colours; got {len(items):,}")
    ab = np.array([hex_to_ab(c) for c in items], np.float32)
    counts = bin_histogram(ab)
    assert counts.shape == (NUM_BINS,)
    return PaletteTarget(palette_target(counts), ",".join(items))


def palette_from_image(rgb: np.ndarray, label: str = "reference") -> PaletteTarget:
    """A palette from a decoded image's pixels (H, W, 3) uint8/uint16, at most ~256x256 of them, with per-L* band
    targets (``palette_from_ab``).

    Raises:
        GuidanceError: an empty or gray image.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise GuidanceError(f"the palette {label} is empty")
    step = max(1, int(math.ceil(max(rgb.shape[:2]) / 256)))
    small = rgb[::step, ::step, :3].astype(np.float32) / (65535.0 if rgb.dtype == np.uint16 else 255.0)
    lab = rgb_to_lab(small)
    return palette_from_ab(lab[..., 1:], label, lab[..., 0])


def is_colour_list(text: str) -> bool:
    """Whether a ``--palette`` value is a colour list (``#...``) rather than a file name."""
    return str(text).strip().startswith("#")


def load_guidance(
    hint_args: list[str] | tuple[str, ...] = (),
    hints_file: str | None = None,
    palette: str | None = None,
    max_pixels: int | None = None,
) -> tuple[list[PointHint], PaletteTarget | None]:
    """The command line's ``--hint`` (repeated), ``--hints FILE.json`` and ``--palette REF|#hex,...``, parsed.

    Args:
        hint_args: ``X,Y,#RRGGBB[,R]`` strings.
        hints_file: a JSON file with a list of hint objects.
        palette: a reference image's path, or a ``#hex,#hex`` list.
        max_pixels: the decompression-bomb guard for the reference image.

    Returns:
        (hints, palette or None).

    Raises:
        GuidanceError: one line naming the option.
    """
    from ..pipeline.images import ImageError, read_image

    hints = []
    for text in hint_args:
        try:
            hints.append(parse_hint(text))
        except GuidanceError as exc:
            raise GuidanceError(f"--hint: {exc}") from None
    if hints_file is not None:
        try:
            with open(hints_file, encoding="utf-8") as f:
                text = f.read(10_000_000)
        except (OSError, UnicodeDecodeError) as exc:
            raise GuidanceError(f"--hints {hints_file}: {getattr(exc, 'strerror', None) or 'not a UTF-8 text file'}") from None
        try:
            hints += hints_from_json(text)
        except GuidanceError as exc:
            raise GuidanceError(f"--hints {hints_file}: {exc}") from None
    try:
        check_hint_count(len(hints))
    except GuidanceError as exc:
        raise GuidanceError(f"--hint/--hints: {exc}") from None
    target = None
    if palette is not None:
        try:
            if is_colour_list(palette) or not palette.strip():
                target = palette_from_colors(palette)
            else:
                image = read_image(palette, max_pixels)
                target = palette_from_image(image.rgb, palette)
        except (GuidanceError, ImageError) as exc:
            raise GuidanceError(f"--palette: {exc}") from None
    return hints, target
