"""User guidance for the colorization: point hints (a colour at a pixel, propagated along objects) and a palette
(a target colour distribution the 313-bin prediction is re-weighted toward). Training-free; see docs/hints.md."""
