"""Average the weights of checkpoints of one model (a "model soup", Wortsman et al. 2022).

    colorize-soup OUT.pt A.pt B.pt [--weights 0.5 0.5]

Fine-tuned runs that start from the same weights stay in one basin, so their average is a working model
that is often better than each of them (the shipped default is one: docs in the model card). Each input
contributes its EMA weights where it has them, else its weights. Floating-point tensors (BN running
statistics included) are averaged in float32 and stored in the first input's dtype; integer buffers
(BN's batch counters) are taken from the first input. The output is an ordinary checkpoint: export,
evaluate or fine-tune it (``init_from``) like any other.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ..core.atomic import check_writable
from ..core.files import same_file
from ..models.checkpoint import load_checkpoint, save_checkpoint, weights_key


def _architecture(state: dict) -> tuple[str, dict]:
    args = {k: v for k, v in state.get("variant_args", {}).items() if k != "pretrained"}  # init only
    return state["variant"], args


def average_checkpoints(paths: list[str | Path], weights: list[float] | None = None) -> dict:
    """Weighted average of the (EMA) weights of checkpoints of one variant.

    Args:
        paths: two or more checkpoints (``.pt``) of the same variant with the same architecture args.
        weights: one positive weight per checkpoint (normalised to sum 1); ``None``: equal weights.

    Returns:
        A checkpoint dict (``model``, ``variant``, ``variant_args``, ``soup``) for ``save_checkpoint``.
        One-line ``ValueError`` for fewer than two inputs, bad weights, or checkpoints that do not match.
    """
    if len(paths) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise ValueError(f"{len(weights)} weights for {len(paths)} checkpoints")
    if not all(w > 0 and math.isfinite(w) for w in weights):
        raise ValueError(f"weights must be positive and finite; got {weights}")
    top = max(weights)
    scaled = [w / top for w in weights]  # the sum of huge weights (1e308 + 1e308) would overflow to inf
    if min(scaled) < 1e-300:  # e.g. 1e308 and 1e-308: the small one would silently count as 0
        raise ValueError(f"each weight must be at least 1e-300 × the largest; got {weights}")
    weights, total = scaled, sum(scaled)
    first = load_checkpoint(paths[0])
    soup: dict[str, torch.Tensor] = {}
    record = []
    for i, (path, w) in enumerate(zip(paths, weights, strict=True)):
        state = load_checkpoint(path) if i else first
        if _architecture(state) != _architecture(first):
            raise ValueError(f"{path} holds {_architecture(state)}, but {paths[0]} holds {_architecture(first)}")
        sd = state[weights_key(state)]
        if soup and (set(sd) != set(soup) or any(sd[k].shape != soup[k].shape for k in sd)):
            raise ValueError(f"{path}: its weights do not match {paths[0]}'s")
        for key, value in sd.items():
            if not value.is_floating_point():
                soup.setdefault(key, value.clone())
            elif key in soup:
                soup[key] += value.float() * (w / total)
            else:
                soup[key] = value.float() * (w / total)
        record.append({"path": Path(path).name, "weight": w / total, "step": state.get("step")})
    ref = first[weights_key(first)]
    model = {k: v.to(ref[k].dtype) for k, v in soup.items()}
    return {"model": model, "ema": None, "variant": first["variant"], "variant_args": first.get("variant_args", {}),
            "step": None, "soup": record}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colorize-soup", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the averaged checkpoint to write (.pt)")
    ap.add_argument("checkpoints", nargs="+", help="two or more checkpoints of the same model")
    ap.add_argument("--weights", nargs="+", type=float, help="one positive weight per checkpoint (default: equal)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if any(same_file(out, p) for p in args.checkpoints):
        print(f"colorize-soup: error: OUT ({out}) is one of the inputs; write the soup to a new file", file=sys.stderr)
        return 2
    if out.is_dir():
        print(f"colorize-soup: error: OUT {out} is a folder; name the .pt file to write", file=sys.stderr)
        return 2
    try:
        check_writable(out.parent)  # before loading anything
    except OSError as exc:
        print(f"colorize-soup: error: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        state = average_checkpoints(args.checkpoints, args.weights)
    except (ValueError, FileNotFoundError) as exc:
        print(f"colorize-soup: error: {exc}", file=sys.stderr)
        return 2
    save_checkpoint(out, state)
    parts = ", ".join(f"{r['weight']:.3g} × {r['path']}" for r in state["soup"])
    print(f"wrote {out}: {state['variant']} = {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
