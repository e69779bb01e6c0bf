"""The accuracy gate: a converted model (fp16, INT8) against its reference, by rebalanced AuC on held-out images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .predictors import onnx_predictor
from .scoring import EVAL_SHORT_SIDE, MIN_CHROMA, evaluate, iter_lab_images


@dataclass
class GateResult:
    """Outcome of ``accuracy_gate``: both rebalanced AuCs, the allowed drop and the evaluation table."""

    reference_auc: float
    candidate_auc: float
    max_drop: float
    n_images: int
    reference: str = "fp32"
    candidate: str = "int8"
    table: dict = field(default_factory=dict)

    @property
    def drop(self) -> float:
        return self.reference_auc - self.candidate_auc

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.drop)) and self.drop <= self.max_drop

    def message(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"accuracy gate {verdict}: rebalanced AuC {self.reference} {self.reference_auc:.2f}, "
            f"{self.candidate} {self.candidate_auc:.2f} (drop {self.drop:.2f}, allowed {self.max_drop:.2f}; "
            f"{self.n_images} images)"
        )


def accuracy_gate(
    reference: str | Path,
    candidate: str | Path,
    eval_files: list[Path],
    max_drop: float,
    *,
    names: tuple[str, str] = ("fp32", "int8"),
    progress: bool = False,
) -> GateResult:
    """Score both models with the paper's metric (``scoring.evaluate``) on ``eval_files``.

    Args:
        reference: the reference ONNX model (fp32).
        candidate: the converted ONNX model.
        eval_files: held-out colour images.
        max_drop: largest allowed drop of rebalanced AuC (points).
        names: labels of the two models in messages and the table.
        progress: show a progress bar.

    Returns:
        The ``GateResult`` (``passed``, ``message()``, the full table).
    """
    res = evaluate(
        eval_files,
        {names[0]: onnx_predictor(reference), names[1]: onnx_predictor(candidate)},
        progress=progress,
    )
    m = res["methods"]
    return GateResult(
        reference_auc=m[names[0]]["auc_rebal"],
        candidate_auc=m[names[1]]["auc_rebal"],
        max_drop=max_drop,
        n_images=m[names[0]]["n_images"],
        reference=names[0],
        candidate=names[1],
        table=res,
    )


def require_colour_images(files: list[Path], folder: str | Path, option: str) -> None:
    """Raise unless ``files`` hold at least one readable colour image (stops at the first one found): checked
    before any conversion work, since the metric skips nearly colourless and unreadable images and a folder
    with none left would make the gate compare ``nan`` with ``nan``.

    Args:
        files: the images the gate will score.
        folder: the folder they came from (for the message).
        option: the command-line option that named the folder (e.g. ``--val``).

    Raises:
        ValueError: one line, ``OPTION DIR has no colour images to score (N nearly colourless, M unreadable)``.
    """
    gray = unreadable = 0
    for f in files:
        item = next(iter_lab_images([f], EVAL_SHORT_SIDE), None)
        if item is None:
            unreadable += 1
        elif np.abs(item[1][..., 1:]).sum(-1).mean() < MIN_CHROMA:
            gray += 1
        else:
            return
    raise ValueError(f"{option} {folder} has no colour images to score ({gray} nearly colourless, {unreadable} unreadable)")
