"""Registry of variants, each an args dict; ``create_model(name, **overrides)`` is the single way in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}


def register(name: str, builder: Callable[..., Any], **defaults: Any) -> None:
    _REGISTRY[name] = (builder, defaults)


def list_models() -> list[str]:
    _ensure_registered()
    return sorted(_REGISTRY)


def model_info(name: str) -> dict[str, Any]:
    """Default args of a variant (what the checkpoint records alongside the name)."""
    _ensure_registered()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return dict(_REGISTRY[name][1])


def create_model(name: str, **overrides: Any):
    """Build variant ``name``; ``None`` overrides are dropped so the defaults still apply."""
    args = model_info(name)
    args.update({k: v for k, v in overrides.items() if v is not None})
    builder = _REGISTRY[name][0]
    model = builder(**args)
    model.variant = name
    model.variant_args = args
    return model


def _ensure_registered() -> None:
    if _REGISTRY:
        return
    from .efficientnet_lite import LiteColorizer
    from .papernet import PaperNet

    register("papernet", PaperNet, width=1.0, head="classification")
    register("mobile", PaperNet, width=0.5, head="classification")
    register("l2", PaperNet, width=0.5, head="regression")
    register("papernet-l2", PaperNet, width=1.0, head="regression")
    register("mobile-lite0", LiteColorizer, decoder_width=1.0, head="classification", pretrained=True)
    register("mobile-lite1", LiteColorizer, decoder_width=1.0, head="classification", pretrained=True, encoder="lite1")
    register("mobile-lite2", LiteColorizer, decoder_width=1.0, head="classification", pretrained=True, encoder="lite2")
    register("lite0-l2", LiteColorizer, decoder_width=1.0, head="regression", pretrained=True)
