"""Runners share one small lifecycle (Polygraphy style): ``activate`` / ``infer`` / ``deactivate``,
usable as context managers, exchanging dicts of named numpy arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...core.constants import DEFAULT_T
from ...core.netinput import pad_to_multiple
from .session import ort_session

# ONNX Runtime's CPU arena keeps its peak: one 1024² run of the default model leaves ~370 MB held for the
# life of the session (a 4096² one, gigabytes), outside what the server's admission counts. Runs on more
# pixels than this hand the unused arena back afterwards; up to it (a 1024² image, or the tiled mode's batch
# of four 512² tiles) the arena stays warm, so the common sizes do not re-allocate on every run.
ARENA_KEEP_PIXELS = 1024 * 1024
MODEL_INPUTS = ("L", "temperature")  # what every colorize-rt export takes (temperature may be an initializer)
# An optional output of classification exports: the 313-bin logits at network resolution (the palette reads them).
# Runners compute it only when a caller names it in ``infer(feed, outputs=...)``.
LOGITS_OUTPUT = "logits"


def check_model_inputs(inputs: list[str], path: str | Path, outputs: list[str] | None = None) -> None:
    """Refuse a model that is not a colorize-rt export: its required inputs must be ``L`` (and ``temperature``),
    and, when ``outputs`` are given, they must include ``ab``.

    Args:
        inputs: the model's graph inputs that are not initializers.
        path: the model file (for the message).
        outputs: the model's outputs, or None to skip that check.

    Raises:
        ValueError: one line naming ``path`` and the inputs it has.
    """
    if "L" in inputs and set(inputs) <= set(MODEL_INPUTS) and (outputs is None or "ab" in outputs):
        return
    shown = f" (outputs: {', '.join(outputs)})" if outputs is not None else ""
    raise ValueError(
        f"{path} is not a colorize-rt export: its inputs are {', '.join(inputs) or 'none'}, not L/temperature{shown}"
    )


class Runner:
    name = "base"

    def __init__(self) -> None:
        self.is_active = False

    def activate(self) -> Runner:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def infer(self, feed: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Run the model.

        Args:
            feed: input name -> array.
            outputs: the outputs wanted; None: every output but the optional ``logits``.

        Returns:
            Output name -> array.
        """
        if not self.is_active:
            raise RuntimeError(f"runner {self.name} is not active; call activate() or use it as a context manager")
        return self.infer_impl(feed) if outputs is None else self.infer_impl(feed, outputs=tuple(outputs))

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate_impl(self) -> None:  # pragma: no cover - overridden
        pass

    def deactivate_impl(self) -> None:  # pragma: no cover - overridden
        pass

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


class OrtRunner(Runner):
    """ONNX Runtime session over an exported colorize-rt model (fp32, fp16 or INT8 Q/DQ).

    ``providers`` is an ONNX Runtime provider list (names or ``(name, options)`` pairs). ORT silently drops
    a provider it cannot load (e.g. CUDA without its libraries); ``strict`` turns that into an error so the
    backend selection can fall back explicitly instead of running on the CPU unawares.

    On the CPU provider, after a run on more than ``arena_keep_pixels`` input pixels (batch included), the
    memory arena is shrunk back to what is in use (ONNX Runtime's ``memory.enable_memory_arena_shrinkage``),
    so one large image does not leave its peak memory held by the session; ``None`` never shrinks.
    """

    name = "onnxruntime-cpu"

    def __init__(
        self,
        model_path: str | Path,
        providers: list | None = None,
        threads: int = 0,
        strict: bool = False,
        spin: bool = True,
        arena_keep_pixels: int | None = ARENA_KEEP_PIXELS,
    ):
        super().__init__()
        self.model_path = Path(model_path)
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads = threads
        self.strict = strict
        self.spin = spin  # CPU only: idle intra-op threads spin (False leaves the cores to decode/encode)
        self.arena_keep_pixels = arena_keep_pixels
        self.session = None
        self._shrink = None  # RunOptions that release the CPU arena after the run
        self._accepted: set[str] = set()
        self._outputs: list[str] = []
        self._t_rank = 0

    def activate_impl(self) -> None:
        if self.providers == ["CPUExecutionProvider"]:  # the saved optimised graph: no optimisation at start
            from .ort_cache import cpu_session

            self.session = cpu_session(self.model_path, self.threads, spin=self.spin)
        else:
            self.session = ort_session(self.model_path, self.providers, threads=self.threads)
        if self.strict:
            wanted = [p if isinstance(p, str) else p[0] for p in self.providers]
            got = self.session.get_providers()
            if wanted and wanted[0] not in got:
                self.session = None
                raise RuntimeError(f"{wanted[0]} could not be initialised (ONNX Runtime fell back to {got})")
        self._accepted = {i.name for i in self.session.get_inputs()}
        self._accepted |= {i.name for i in self.session.get_overridable_initializers()}
        # temperature is a scalar in colorize-rt exports; a model may declare it [1] instead
        self._t_rank = next((len(i.shape) for i in self.session.get_inputs() if i.name == "temperature"), 0)
        self._outputs = [o.name for o in self.session.get_outputs()]
        if self.arena_keep_pixels is not None and self.providers == ["CPUExecutionProvider"]:
            import onnxruntime as ort

            self._shrink = ort.RunOptions()
            self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def deactivate_impl(self) -> None:
        self.session = None
        self._shrink = None

    @property
    def active_providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else []

    def accepts(self, name: str) -> bool:
        return name in self._accepted

    def has_output(self, name: str) -> bool:
        return name in self._outputs

    def infer_impl(self, feed: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        names = [o for o in self._outputs if o != LOGITS_OUTPUT] if outputs is None else list(outputs)
        feed = {k: v for k, v in feed.items() if k in self._accepted}
        t = feed.get("temperature")
        if t is not None and np.ndim(t) != self._t_rank and np.size(t) == 1:
            feed["temperature"] = np.asarray(t, dtype=np.float32).reshape((1,) * self._t_rank)
        pixels = max((np.size(v) for v in feed.values()), default=0)
        options = self._shrink if self._shrink is not None and pixels > self.arena_keep_pixels else None
        return dict(zip(names, self.session.run(names, feed, options), strict=True))


def predict_ab(runner: Runner, L: np.ndarray, temperature: float = DEFAULT_T) -> np.ndarray:
    """Run the network on one L* map (H, W) at its own size -> ab (2, H, W).

    The map is edge-padded to a multiple of 8 (the network's stride) and the result cropped back.
    """
    h, w = L.shape
    return predict_ab_batch(runner, pad_to_multiple(L)[None, None], temperature)[0, :, :h, :w]


def predict_ab_batch(runner: Runner, L: np.ndarray, temperature: float = DEFAULT_T) -> np.ndarray:
    """L (N, 1, H, W) float32, H and W multiples of 8 -> ab (N, 2, H, W) float32."""
    feed = {
        "L": np.ascontiguousarray(L, dtype=np.float32),
        "temperature": np.array(temperature, dtype=np.float32),
    }
    return np.asarray(runner.infer(feed)["ab"], dtype=np.float32)


def predict_logits_batch(runner: Runner, L: np.ndarray, temperature: float = DEFAULT_T) -> tuple[np.ndarray, np.ndarray]:
    """``predict_ab_batch`` that also returns the 313-bin logits (for the palette re-weighting).

    Args:
        runner: an active runner over a classification export with the ``logits`` output.
        L: (N, 1, H, W) float32, H and W multiples of 8.
        temperature: the annealed-mean temperature.

    Returns:
        (ab (N, 2, H, W), logits (N, 313, H/4, W/4)), float32.

    Raises:
        ValueError: the model has no ``logits`` output (an L2 model, or an export older than the output).
    """
    if not getattr(runner, "has_output", lambda _: False)(LOGITS_OUTPUT):
        raise ValueError("this model has no 313-bin 'logits' output (an L2 model or an older export): a palette needs one")
    feed = {
        "L": np.ascontiguousarray(L, dtype=np.float32),
        "temperature": np.array(temperature, dtype=np.float32),
    }
    out = runner.infer(feed, outputs=("ab", LOGITS_OUTPUT))
    return np.asarray(out["ab"], dtype=np.float32), np.asarray(out[LOGITS_OUTPUT], dtype=np.float32)
