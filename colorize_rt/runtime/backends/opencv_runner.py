"""OpenCV dnn on the same ONNX file (what users of OpenCV's colorization sample run), fp32 or Q/DQ INT8.

One of the CPU candidates ``auto`` times (``backends.registry``); also a benchmark row. OpenCV's thread count
is process-wide (``cv2.setNumThreads``), so ``threads`` is applied at activation and affects every OpenCV
call in the process.

OpenCV dnn can kill the process on a model it mis-handles (OpenCV 5.1 dies of SIGFPE on the shipped
``default-l2``), which no ``try`` catches. So before a model is first opened in-process, ``opencv_survives``
runs it once in a child process on a small input and records the outcome under
``<cache root>/opencv-vetted/`` (keyed by the model's sha256 and OpenCV's version); a model that killed the
child is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from ...core.atomic import atomic_write_text
from ...core.constants import DEFAULT_T
from ...core.lazy import require
from ...core.paths import cache_dir
from .runners import Runner

_CHILD = """
import sys, numpy as np, cv2
net = cv2.dnn.readNetFromONNX(sys.argv[1])
net.setInput(np.full((1, 1, 24, 40), 50, np.float32), "L")
net.setInput(np.array([0.38], np.float32), "temperature")
net.forward(list(net.getUnconnectedOutLayersNames()))
"""


def opencv_survives(model_path: str | Path) -> tuple[bool, str]:
    """Whether OpenCV dnn runs ``model_path`` without killing (or hanging) the process, tried once in a child
    process. A model OpenCV refuses with an exception survives: the exception comes again in-process.

    Args:
        model_path: the ONNX model.

    Returns:
        (survives, one-line reason when it does not); recalled from the cache after the first try.
    """
    from .selfcheck import cache_read_only, model_sha256

    cv2 = require("cv2")
    key = hashlib.sha256(f"{model_sha256(model_path)} {cv2.__version__} v2".encode()).hexdigest()[:32]
    record = cache_dir("opencv-vetted") / f"{key}.json"
    try:
        d = json.loads(record.read_text())
        return bool(d["ok"]), str(d["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(model_path)], capture_output=True, text=True, timeout=120)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    if code is None:
        ok, reason = False, f"OpenCV dnn {cv2.__version__} hangs on {Path(model_path).name} (no answer in 120 s)"
    elif code < 0:
        ok, reason = False, f"OpenCV dnn {cv2.__version__} crashes on {Path(model_path).name} ({signal.Signals(-code).name})"
    else:  # ran, or raised an exception: that one is raised again, catchable, in-process
        ok, reason = True, ""
    if not cache_read_only():
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(record, json.dumps({"ok": ok, "reason": reason, "model": str(model_path)}))
        except OSError:
            pass  # tried again next time
    return ok, reason


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
        ok, reason = opencv_survives(self.model_path)
        if not ok:
            raise RuntimeError(reason)
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
