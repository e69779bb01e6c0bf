"""Two-pass (forward + backward) stabilisation, ``colorize-rt clip.mp4 --two-pass``.

The one-pass stabiliser (``stabilize.TemporalStabilizer``) only looks back, so a shot's first frames keep
their per-frame colour and every swing of the network leaks through at ``1 - carry``. Here each shot is run
forward as usual, spilled to a temp file at network resolution, and then run *backward* through a second
stabiliser fed with the forward result (a forward-backward filter, like ``filtfilt``): colour is carried
from later frames to earlier ones too, and a swing is damped twice.

Memory stays bounded: only the network-resolution L* and ab of one window are kept, on disk (float16,
``SpillFile``), and a window ends at a scene cut or after ``WINDOW_FRAMES`` frames (the backward pass
restarts there; the forward pass runs on across it). The caller decodes the clip twice: once ahead (this
module, one window ahead of the writer) and once to recombine and encode. So it cannot stream from a pipe,
and a shot's first frame is no longer exactly the per-frame output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from .stabilize import StabilizerSettings, TemporalStabilizer

WINDOW_FRAMES = 1024  # longest run of frames spilled before the backward pass (disk: ~220 MB at 256x144)


class SpillFile:
    """Fixed-size float16 records of (L*, a, b) at one network resolution, in an unnamed temp file.

    Args:
        shape: (h, w) of the records.
        folder: where the temp file goes (None: the system's temp folder).
    """

    def __init__(self, shape: tuple[int, int], folder: str | None = None):
        self.shape = tuple(shape)
        self.record = 3 * self.shape[0] * self.shape[1] * 2
        self._file = tempfile.TemporaryFile(prefix="colorize-two-pass.", dir=folder)

    def write(self, k: int, L: np.ndarray, ab: np.ndarray) -> None:
        """Store record ``k``: L* (h, w) and ab (2, h, w)."""
        rec = np.concatenate([np.asarray(L, np.float16)[None], np.asarray(ab, np.float16)])
        self._file.seek(k * self.record)
        self._file.write(rec.tobytes())

    def read(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns: record ``k`` as (L* (h, w), ab (2, h, w)) float32."""
        self._file.seek(k * self.record)
        rec = np.frombuffer(self._file.read(self.record), np.float16).reshape(3, *self.shape).astype(np.float32)
        return rec[0], rec[1:]

    def close(self) -> None:
        self._file.close()


class TwoPassColour:
    """Forward + backward stabilised ab, frame by frame, one window ahead of the caller.

    Args:
        frames: the clip's network inputs (L* at network resolution, in order), e.g. from a second decode.
        predict: the network, ``L -> ab (2, h, w)``.
        settings: the stabilisers' settings (both directions).
        window: the most frames spilled before a backward pass.
        folder: where the spill file goes.
    """

    def __init__(
        self,
        frames: Iterator[np.ndarray],
        predict: Callable[[np.ndarray], np.ndarray],
        settings: StabilizerSettings | None = None,
        window: int = WINDOW_FRAMES,
        folder: str | None = None,
    ):
        if window < 1:
            raise ValueError(f"window must be at least 1 frame; got {window}")
        self._frames = iter(frames)
        self._predict = predict
        self.forward = TemporalStabilizer(settings)
        self._backward = TemporalStabilizer(settings)
        self._window = window
        self._folder = folder
        self._spill: SpillFile | None = None
        self._start = 0  # clip index of the spill's record 0
        self._count = 0  # records of the current window
        self._held: tuple[np.ndarray, np.ndarray] | None = None  # a new shot's first frame, forward done
        self.windows = 0

    @property
    def cuts(self) -> int:
        """Scene cuts found by the forward pass so far."""
        return self.forward.cuts

    def ab(self, i: int) -> np.ndarray:
        """The stabilised ab (2, h, w) of frame ``i``; frames are asked for in order (0, 1, 2, ...).

        Raises:
            IndexError: ``i`` is behind the current window or past the clip's end.
        """
        if i < self._start:
            raise IndexError(f"frame {i} was already handed out (windows move forward only)")
        while i >= self._start + self._count:
            self._start += self._count
            self._count = self._fill()
            if not self._count:
                raise IndexError(f"frame {i} is past the end of the clip ({self._start} frames)")
        return self._spill.read(i - self._start)[1]

    def close(self) -> None:
        """Drop the spill file and stop the frame source (a generator is closed)."""
        getattr(self._frames, "close", lambda: None)()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __enter__(self) -> TwoPassColour:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _store(self, k: int, L: np.ndarray, ab: np.ndarray) -> None:
        if self._spill is None or self._spill.shape != L.shape:
            if self._spill is not None and k:
                raise ValueError("the network input size changed inside a window")
            if self._spill is not None:
                self._spill.close()
            self._spill = SpillFile(L.shape, self._folder)
        self._spill.write(k, L, ab)

    def _fill(self) -> int:
        """Run the forward pass to the next cut (or the window's end) and the backward pass over it."""
        n = 0
        if self._held is not None:
            self._store(0, *self._held)
            self._held, n = None, 1
        while n < self._window:
            L = next(self._frames, None)
            if L is None:
                break
            L = np.asarray(L, np.float32)
            ab, restart = self.forward.step(L, self._predict(L))
            if restart and n:
                self._held = (L, ab)  # the next window begins with this shot
                break
            self._store(n, L, ab)
            n += 1
        if n:
            self.windows += 1
            self._backward.reset()
            for k in range(n - 1, -1, -1):
                L, ab = self._spill.read(k)
                self._spill.write(k, L, self._backward.step(L, ab)[0])
        return n
