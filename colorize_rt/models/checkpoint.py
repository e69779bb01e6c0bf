"""Self-describing checkpoints: a plain dict with weights, variant name and args, config and progress.

Written atomically; loaded with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_path
from . import create_model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically.

    Args:
        path: the ``.pt`` file.
        state: at least ``model`` (state dict) and ``variant`` (registry name); usually ``variant_args`` too.

    Returns:
        ``path``.
    """
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Args:
        path: the ``.pt`` file.

    Returns:
        The checkpoint dict; ``FileNotFoundError`` / one-line ``ValueError`` for a missing or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path} is not a readable colorize-rt checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or "model" not in state or "variant" not in state:
        raise ValueError(f"{path} is not a colorize-rt checkpoint (no 'model'/'variant' entries)")
    return state


def weights_key(state: dict[str, Any], use_ema: bool = True) -> str:
    """Which weights of a checkpoint to use.

    Args:
        state: a checkpoint dict.
        use_ema: prefer the EMA weights.

    Returns:
        ``"ema"`` when asked for and present, else ``"model"``.
    """
    return "ema" if use_ema and state.get("ema") is not None else "model"


def model_from_checkpoint(path: str | Path, use_ema: bool = True):
    """Rebuild the network recorded in a checkpoint, in eval mode.

    Args:
        path: the ``.pt`` file.
        use_ema: load the EMA weights when the checkpoint has them.

    Returns:
        ``(net, checkpoint dict)``; a one-line ``ValueError`` when the weights do not fit the recorded variant.
    """
    state = load_checkpoint(path)
    args = dict(state.get("variant_args", {}))
    if "pretrained" in args:
        args["pretrained"] = False  # the checkpoint carries the encoder weights
    variant = f"{state['variant']!r} {state.get('variant_args', {})}"
    try:
        net = create_model(state["variant"], **args)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot build its variant {variant}: {exc}") from None
    try:
        net.load_state_dict(state[weights_key(state, use_ema)])
    except (RuntimeError, TypeError, AttributeError) as exc:  # torch: "Error(s) in loading state_dict ... Missing key(s)"
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:160]
        raise ValueError(f"{path}: its weights do not fit its variant {variant} ({detail})") from None
    return net.eval(), state
