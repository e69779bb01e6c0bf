"""Admission control for the server: a memory budget, a bounded FIFO queue and per-request limits.

Every colorization that has to be computed (cache hits cost nothing and skip this) first estimates its
working memory from the image header (:func:`estimate_bytes`), then waits its turn:

* a request whose estimate alone is over the budget, or whose network work is over ``max_network_mp``
  (tiled mode on a huge image), is refused at once (HTTP 413, one line saying what to change);
* at most ``slots`` requests compute at once, and only while the sum of their estimates fits the budget;
  the others wait in FIFO order (so a large request is not starved by small ones);
* when ``queue`` requests are already waiting, or a request waited ``wait_s`` without its turn coming,
  it is refused with :class:`Overloaded` (HTTP 503 with ``Retry-After``).

So the server's peak RSS stays near its idle RSS plus the budget. Defaults (see :meth:`AdmissionConfig.from_env`
and docs/ENVIRONMENT.md): budget a quarter of the memory available at start, between 256 MiB and 1.5 GiB;
``slots`` the core count (the network itself runs one request at a time; decoding, recombination and
encoding of several run in parallel); ``queue`` 4 x slots; ``wait_s`` 30 s.
"""

from __future__ import annotations

import collections
import ctypes
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..core.constants import NET_MULTIPLE
from ..runtime.pipeline.images import ImageHeader
from ..runtime.pipeline.modes import fit_shape, tile_grid, tile_starts

MiB = 1 << 20
# Working bytes per image pixel beyond the network, measured on the service (decode, L*, recombination,
# PNG encoding of the result): 8-bit RGB / gray 11 to 18 (23 on a process's first large request), 16-bit
# RGBA 35; the constants add a margin.
BYTES_PER_PIXEL_8 = 20
BYTES_PER_PIXEL_8_ALPHA = 24
BYTES_PER_PIXEL_16 = 44
# Network working memory per network input pixel (the shipped model, ONNX Runtime CPU, measured 390).
NET_BYTES_PER_PIXEL = 400
TILE_BATCH = 4  # tiles per network call in tiled mode (Colorizer.colorize's default batch)
_TILE, _OVERLAP = 512, 64  # the tile grid the service uses (Colorizer.colorize defaults)


class Overloaded(RuntimeError):
    """The server is full; retry after ``retry_after_s`` seconds (HTTP 503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = int(retry_after_s)


class TooLarge(ValueError):
    """One request needs more than the server allows any request (HTTP 413); one actionable line."""


def _align(n: int) -> int:
    return -(-n // NET_MULTIPLE) * NET_MULTIPLE


def network_pixels(header: ImageHeader, mode: str, size: int) -> int:
    """Pixels the network processes for one request: the padded fit-mode input, or all tiles."""
    if mode == "tiled":
        tile, stride = tile_grid(_TILE, _OVERLAP)
        rows = len(tile_starts(header.height, tile, stride))
        cols = len(tile_starts(header.width, tile, stride))
        th, tw = min(tile, _align(header.height)), min(tile, _align(header.width))
        return rows * cols * th * tw
    h, w = fit_shape(header.height, header.width, size)
    return _align(h) * _align(w)


def estimate_bytes(header: ImageHeader, mode: str, size: int, network: bool = True) -> int:
    """Working memory of one colorization (an upper estimate, used for admission).

    Args:
        header: the input's header (size, depth, channels).
        mode: ``fit`` or ``tiled``.
        size: fit-mode network size.
        network: whether a network runs (``False`` for the model-free transfer method).

    Returns:
        Bytes.
    """
    if header.bit_depth == 16:
        per_pixel = BYTES_PER_PIXEL_16
    else:
        per_pixel = BYTES_PER_PIXEL_8_ALPHA if header.channels in (2, 4) else BYTES_PER_PIXEL_8
    total = header.pixels * per_pixel
    if network:
        if mode == "tiled":
            tile = min(_TILE, _align(max(header.height, header.width)))
            total += TILE_BATCH * tile * tile * NET_BYTES_PER_PIXEL
        else:
            total += network_pixels(header, mode, size) * NET_BYTES_PER_PIXEL
    return int(total)


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(frozen=True)
class AdmissionConfig:
    """``budget_mb``: working memory of all computing requests together (MiB); ``slots``: requests computing
    at once; ``queue``: requests waiting at most; ``wait_s``: longest wait in the queue; ``max_network_mp``:
    network megapixels one request may use (bounds the CPU time of tiled requests)."""

    budget_mb: float
    slots: int
    queue: int
    wait_s: float = 30.0
    max_network_mp: float = 16.0

    @classmethod
    def default(cls) -> AdmissionConfig:
        """Budget: a quarter of the available memory, clamped to 256 MiB .. 1.5 GiB (one 50 MP upload
        needs about 1 GiB); slots: the core count; queue: 4 x slots."""
        avail = _mem_available()
        budget = 1536.0 if avail is None else min(1536.0, max(256.0, avail / 4 / MiB))
        slots = max(1, os.cpu_count() or 1)
        return cls(budget_mb=budget, slots=slots, queue=4 * slots)

    @classmethod
    def from_env(cls, **override) -> AdmissionConfig:
        """Defaults, then ``COLORIZE_RT_MEMORY_BUDGET_MB``, ``COLORIZE_RT_SLOTS``, ``COLORIZE_RT_QUEUE``,
        ``COLORIZE_RT_QUEUE_WAIT_S``, ``COLORIZE_RT_MAX_NETWORK_MP``, then non-``None`` keyword overrides."""
        base = cls.default()
        env = os.environ
        fields = {
            "budget_mb": ("COLORIZE_RT_MEMORY_BUDGET_MB", float),
            "slots": ("COLORIZE_RT_SLOTS", int),
            "queue": ("COLORIZE_RT_QUEUE", int),
            "wait_s": ("COLORIZE_RT_QUEUE_WAIT_S", float),
            "max_network_mp": ("COLORIZE_RT_MAX_NETWORK_MP", float),
        }
        values = {}
        for name, (var, kind) in fields.items():
            value = override.get(name)
            if value is None and env.get(var):
                try:
                    value = kind(env[var])
                except ValueError:
                    raise ValueError(f"{var}={env[var]!r} is not {'an integer' if kind is int else 'a number'}") from None
            values[name] = getattr(base, name) if value is None else kind(value)
        if values["budget_mb"] < 16 or values["slots"] < 1 or values["queue"] < 0 or values["wait_s"] < 0:
            raise ValueError("admission: need memory budget >= 16 MB, slots >= 1, queue >= 0, wait >= 0")
        if not values["max_network_mp"] > 0:
            raise ValueError("admission: the network budget must be > 0 MP")
        return cls(**values)


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise); no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Admission:
    """The gate computing requests pass through: ``with admission.admit(cost): ...``."""

    def __init__(self, config: AdmissionConfig):
        self.config = config
        self.budget = int(config.budget_mb * MiB)
        self._cond = threading.Condition()
        self._queue: collections.deque[int] = collections.deque()
        self._ticket = 0
        self._active = 0
        self._in_use = 0
        self._avg_s = 2.0  # moving average of compute time, for Retry-After
        self.counters = {"admitted": 0, "queued": 0, "refused_busy": 0, "refused_large": 0}

    def check_size(self, cost: int, network_px: int, what: str, fix: str) -> None:
        """Raise :class:`TooLarge` if one request alone is over the memory or network budget.

        Args:
            cost: the request's estimated working memory (bytes).
            network_px: pixels the network processes for it.
            what: the request in words, e.g. "a 7000x7000 image in mode=tiled".
            fix: what the client can change, e.g. "use mode=fit or a smaller image".
        """
        if cost > self.budget:
            self._count("refused_large")
            raise TooLarge(
                f"{what} needs about {cost / MiB:.0f} MB of working memory; this server allows {self.budget / MiB:.0f} MB: {fix}"
            )
        if network_px > self.config.max_network_mp * 1e6:
            self._count("refused_large")
            raise TooLarge(
                f"{what} runs the network on {network_px / 1e6:.0f} MP; this server allows "
                f"{self.config.max_network_mp:g} MP per request: {fix}"
            )

    def _count(self, name: str) -> None:
        with self._cond:
            self.counters[name] += 1

    def _retry_after(self) -> int:
        return max(1, min(120, math.ceil(self._avg_s * (len(self._queue) + self._active) / self.config.slots)))

    def _fits(self, cost: int) -> bool:
        return self._active < self.config.slots and self._in_use + cost <= self.budget

    @contextmanager
    def admit(self, cost: int) -> Iterator[None]:
        """Wait for a slot and ``cost`` bytes of budget (FIFO), run the block, give both back.

        Raises:
            Overloaded: the queue is full, or the wait passed ``wait_s``.
        """
        cost = min(int(cost), self.budget)
        with self._cond:
            if not self._queue and self._fits(cost):
                ticket = None
            elif len(self._queue) >= self.config.queue:
                self.counters["refused_busy"] += 1
                raise Overloaded(
                    f"the server is busy ({self._active} computing, {len(self._queue)} queued); retry later",
                    self._retry_after(),
                )
            else:
                ticket = self._ticket = self._ticket + 1
                self._queue.append(ticket)
                self.counters["queued"] += 1
            if ticket is not None:
                deadline = time.monotonic() + self.config.wait_s
                try:
                    while not (self._queue[0] == ticket and self._fits(cost)):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            self.counters["refused_busy"] += 1
                            raise Overloaded(
                                f"the server is busy: no turn within {self.config.wait_s:g} s; retry later",
                                self._retry_after(),
                            )
                        self._cond.wait(left)
                finally:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
            self._active += 1
            self._in_use += cost
            self.counters["admitted"] += 1
        t0 = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._in_use -= cost
                self._avg_s = 0.8 * self._avg_s + 0.2 * (time.monotonic() - t0)
                self._cond.notify_all()
            if cost >= 32 * MiB:
                _trim_heap()

    def stats(self) -> dict:
        """Returns: the configuration, current load and counters (for ``/api/stats``)."""
        with self._cond:
            return {
                "budget_mb": round(self.budget / MiB),
                "slots": self.config.slots,
                "queue": self.config.queue,
                "wait_s": self.config.wait_s,
                "max_network_mp": self.config.max_network_mp,
                "computing": self._active,
                "waiting": len(self._queue),
                "in_use_mb": round(self._in_use / MiB),
                **self.counters,
            }
