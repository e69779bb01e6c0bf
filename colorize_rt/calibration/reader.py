"""Calibration data: a fixed list of images fed with exactly the runtime's preprocessing.

Each image is read, resized so its shorter side is 256 (``eval.scoring.iter_lab_images``, the same
path the evaluation and the runtime's ``fit`` mode use), converted to L* (``core.color``) and
edge-padded to a multiple of 8 as ``runtime.runners.predict_ab`` does; one image per batch (N = 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from tqdm import tqdm

from ..core.constants import DEFAULT_T
from ..core.netinput import pad_to_multiple
from ..eval.scoring import EVAL_SHORT_SIDE, iter_lab_images


class ImageCalibrationReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over ``files``: ``get_next`` yields ``{"L": array, "temperature":
    scalar}`` (``temperature`` is a required graph input; the default is the paper's 0.38, pass the
    model's ``default_temperature`` if it differs). Supports ``set_range`` so calibration can run in chunks.
    ``progress``: a progress bar (stderr) over the images, across chunks."""

    def __init__(
        self,
        files: list[Path],
        short_side: int = EVAL_SHORT_SIDE,
        temperature: float = DEFAULT_T,
        progress: bool = False,
    ):
        if not files:
            raise ValueError("no calibration images")
        self.files = list(files)
        self.short_side = short_side
        self.temperature = np.array(temperature, dtype=np.float32)
        self._bar = tqdm(total=len(self.files), desc="calibrate", unit="img", disable=not progress)
        self.set_range(0, len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end = start_index, min(end_index, len(self.files))
        self._iter = iter_lab_images(self.files[start_index:end_index], self.short_side)

    def rewind(self) -> None:
        self.set_range(0, len(self.files))

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._iter, None)
        if item is None:
            self._bar.n = max(self._bar.n, self._end)  # unreadable files were skipped in this range
            self._bar.refresh()
            if self._end >= len(self.files):
                self._bar.close()
            return None
        self._bar.update(1)
        _, lab = item
        return {"L": pad_to_multiple(lab[..., 0])[None, None], "temperature": self.temperature}
