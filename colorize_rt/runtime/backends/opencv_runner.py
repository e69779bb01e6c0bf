"""OpenCV dnn on the same ONNX file (what users of OpenCV's colorization sample run), fp32 or Q/DQ INT8.

One of the CPU candidates ``auto`` times (``backends.registry``); also a benchmark row. OpenCV's thread count
is process-wide (``cv2.setNumThreads``), so ``threads`` is applied at activation and affects every OpenCV
call in the process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...core.constants import DEFAULT_T
from ...core.lazy import require
from .runners import Runner


class OpenCVRunner(Runner):
    """OpenCV dnn (default backend and target: the CPU) over an exported colorize-rt model.

    Args:
        model_path: the ONNX model.
        threads: OpenCV's threads (0: leave OpenCV's default, all cores).
    """

    name = "opencv-dnn"

    def __init__(self, model_path: str | Path, threads: int = 0):
        super().__init__()
        self.model_path = Path(model_path)
        self.threads = threads
        self.net = None
        self._inputs: set[str] = set()
        self._outputs: list[str] = []

    def activate_impl(self) -> None:
        cv2 = require("cv2")
        if self.threads:
            cv2.setNumThreads(self.threads)
        self.net = cv2.dnn.readNetFromONNX(str(self.model_path))
        self._inputs = {"L", "temperature"}  # OpenCV dnn does not list a graph's inputs
        self._outputs = list(self.net.getUnconnectedOutLayersNames())

    def deactivate_impl(self) -> None:
        self.net = None

    def accepts(self, name: str) -> bool:
        return name in self._inputs

    def has_output(self, name: str) -> bool:
        return name in self._outputs

    def infer_impl(self, feed: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        self.net.setInput(np.ascontiguousarray(feed["L"], dtype=np.float32), "L")
        if "temperature" in self._inputs:  # a real graph input: OpenCV dnn sets it like L, as a 1-vector
            t = feed.get("temperature", DEFAULT_T)
            self.net.setInput(np.asarray(t, dtype=np.float32).reshape(1), "temperature")
        for name, value in feed.items():
            if name not in ("L", "temperature") and name in self._inputs:
                self.net.setInput(np.ascontiguousarray(value), name)
        names = [n for n in self._outputs if n != "logits"] if outputs is None else list(outputs)  # runners.LOGITS_OUTPUT
        outs = self.net.forward(names)
        return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}
