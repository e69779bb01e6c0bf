"""Model factory: one function builds every variant from a name and a width.

Models map normalised lightness (N, 1, H, W) to either 313 bin logits (classification) or
2 normalised ab channels (regression), both at 1/4 resolution.
"""

from .factory import create_model, list_models, model_info

__all__ = ["create_model", "list_models", "model_info"]
