"""Shared numpy core: colour conversion, the 313 ab bins, priors, decoding and metrics (no torch)."""
