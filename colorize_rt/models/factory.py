"""Registry of variants, each an args dict; ``create_model(name, **overrides)`` is the single way in."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}

# Width multipliers must be > 0 (the models clamp each layer to a minimum channel count, so a negative width
# would silently build the narrowest net) and at most this: width 4 already has ~16× the paper's 32 M parameters.
MAX_WIDTH = 4.0


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


def check_model_args(name: str, overrides: dict[str, Any]) -> None:
    """Refuse overrides that variant ``name`` does not take, or values of the wrong type or out of bounds.

    Args:
        name: a registered variant.
        overrides: args for ``create_model`` (``None`` values mean "the default" and pass).

    Raises:
        ValueError: one line naming the arg (and, for an unknown one, the args the variant takes).
    """
    defaults = model_info(name)
    params = inspect.signature(_REGISTRY[name][0]).parameters
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise ValueError(f"model {name!r} has no arg {', '.join(map(repr, unknown))}; its args are {', '.join(sorted(params))}")
    for key, value in overrides.items():
        default = defaults.get(key, params[key].default)
        if value is None or default is inspect.Parameter.empty:
            continue
        if key.endswith("width"):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and 0 < value <= MAX_WIDTH):
                raise ValueError(f"model arg {key!r} must be a number above 0 and at most {MAX_WIDTH:g}; got {value!r}")
        elif not isinstance(value, type(default)):
            raise ValueError(f"model arg {key!r} expects {type(default).__name__}; got {value!r}")


def create_model(name: str, **overrides: Any):
    """Build variant ``name``; ``None`` overrides are dropped so the defaults still apply.

    Unknown args and values out of bounds are a one-line ``ValueError`` (``check_model_args``)."""
    args = model_info(name)
    check_model_args(name, overrides)
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
