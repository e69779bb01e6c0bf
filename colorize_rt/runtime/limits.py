"""The bounds of every user-facing colorization parameter: ONE definition, used by the ``colorize-rt``
command line (click ranges), the HTTP API and the UIs (request validation) and the result cache (key).

Each :class:`Bound` parses a value (a number, or a string from a query parameter), rejects what is not a
finite number inside its range with one line naming the parameter, and returns the validated value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_INT_RE = re.compile(r"[+-]?\d+")


class ParameterError(ValueError):
    """A parameter outside its bounds, or not a number; the message is one line naming the parameter."""


@dataclass(frozen=True)
class Bound:
    """An inclusive range ``[lo, hi]`` for the parameter ``name`` of type ``kind`` (int or float)."""

    name: str
    lo: float
    hi: float
    kind: type = int

    @property
    def range(self) -> tuple:
        """Returns: ``(lo, hi)`` as ``kind`` (for ``click.IntRange(*b.range)`` / ``click.FloatRange``)."""
        return self.kind(self.lo), self.kind(self.hi)

    def check(self, value) -> int | float:
        """Validate ``value``.

        Args:
            value: an int, a float or a string (e.g. a query parameter).

        Returns:
            The value as ``kind``, inside ``[lo, hi]``.

        Raises:
            ParameterError: not a finite number of the right kind, or outside the range (one line).
        """
        want = f"{'an integer' if self.kind is int else 'a number'} from {self.lo:g} to {self.hi:g}"
        shown = repr(value) if isinstance(value, str) else f"{value}"
        if len(shown) > 40:
            shown = shown[:37] + "..."
        try:
            if self.kind is int:
                if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                    raise ValueError
                if isinstance(value, str) and not _INT_RE.fullmatch(value.strip()):
                    raise ValueError
                number = int(value)
            else:
                number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"{self.name} must be {want}; got {shown}") from None
        if not math.isfinite(number) or not self.lo <= number <= self.hi:
            raise ParameterError(f"{self.name} must be {want}; got {shown}")
        return number

    def click_type(self):
        """Returns: a click parameter type that validates with :meth:`check` (unlike ``click.FloatRange``,
        it rejects nan and inf)."""
        import click

        bound = self

        class BoundType(click.ParamType):
            name = f"{'integer' if bound.kind is int else 'number'} {bound.lo:g}..{bound.hi:g}"

            def __init__(self):
                self.bound = bound  # the range, for callers (and tests) that inspect a command's options

            def convert(self, value, param, ctx):
                try:
                    return bound.check(value)
                except ParameterError as exc:
                    self.fail(str(exc), param, ctx)

        return BoundType()


SIZE = Bound("size", 16, 4096)  # fit mode: network input (longer side)
TILE = Bound("tile", 32, 4096)  # tiled mode: tile side
OVERLAP = Bound("overlap", 0, 2048)  # tiled mode: tile overlap
SCALE = Bound("scale", 0.01, 1.0, float)  # tiled mode: scale the tiles are cut from
# Annealed-mean temperature: T -> 0 overflows softmax(log Z / T) into a white image; T >> 1 is the plain mean.
TEMPERATURE = Bound("temperature", 0.01, 10.0, float)
QUALITY = Bound("quality", 1, 100)  # JPEG / WebP quality
MAX_PIXELS = Bound("max_pixels", 0, 10**12)  # decompression-bomb guard (0 = no limit)
# ONNX Runtime intra-op threads (0 = its default, all cores). Each thread costs a stack and a spinning core;
# --threads 99999 once took 16 GB and the whole machine.
THREADS = Bound("threads", 0, 256)
# colorize-rt batch (runtime.batch): Ray actors, resources per actor, images per batch handed to an actor.
BATCH_ACTORS = Bound("actors", 1, 4096)
CPUS_PER_ACTOR = Bound("cpus_per_actor", 0.25, 256, float)
GPUS_PER_ACTOR = Bound("gpus_per_actor", 0, 16, float)
BATCH_IMAGES = Bound("batch_size", 1, 1024)
# Point hints and palettes (runtime.guidance): how many hints a request may carry, a hint's radius in input-image
# pixels, and how many colours a "#hex,#hex,..." palette may list.
HINT_COUNT = Bound("hints", 0, 1000)
HINT_RADIUS = Bound("hint radius", 0, 4096, float)
PALETTE_COLOURS = Bound("palette colours", 1, 1000)
# Video (runtime.video): x264/x265 quality (0 = lossless .. 51), and --start / --duration in seconds (a week).
CRF = Bound("crf", 0, 51)
START_SECONDS = Bound("seconds", 0.0, 7 * 24 * 3600.0, float)
