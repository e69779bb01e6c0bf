"""Import the official eccv16 release weights (``colorization_release_v2-9b330a0b.pth``).

Users bring the file; nothing is downloaded. The release decodes with ``softmax(conv8)`` followed by a
fixed 1×1 conv ``model_out`` whose weights are the bin centres / 110, i.e. the plain mean of the
distribution: temperature **T = 1**. So an imported model run through our decode with
``temperature=1.0`` reproduces the release's own output exactly; the paper's (and Caffe deploy's)
annealed mean is T = 0.38, our default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.bins import ab_bins
from ..core.constants import AB_NORM
from .factory import create_model

RELEASE_T = 1.0


def convert_release_state_dict(state: dict[str, torch.Tensor]):
    """Release state dict -> (PaperNet width 1 with those weights, bins the release decodes with)."""
    state = dict(state)
    model_out = state.pop("model_out.weight", None)
    net = create_model("papernet")
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"not an eccv16 release state dict: missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]}")
    if model_out is not None:
        if tuple(model_out.shape) != (2, 313, 1, 1):
            raise ValueError(f"model_out.weight has shape {tuple(model_out.shape)}; expected (2, 313, 1, 1)")
        release_bins = model_out[:, :, 0, 0].T.double().numpy() * AB_NORM
        if not np.allclose(release_bins, ab_bins(), atol=1e-3):
            raise ValueError("model_out.weight does not hold the 313 official bins in the official order")
    return net


def load_release(path: str | Path):
    """Load the release ``.pth`` (weights only) as a PaperNet."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    return convert_release_state_dict(state)
