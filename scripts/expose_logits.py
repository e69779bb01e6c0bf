"""Add the optional ``logits`` output to ONNX exports in place (the shipped assets by default).

Usage: ``.venv/bin/python scripts/expose_logits.py [MODEL.onnx ...]``. Each file is rewritten atomically and
only if ONNX Runtime's ``ab`` stays bit-identical (``colorize_rt.export.graph.rewrite_logits_output``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from colorize_rt.export.graph import rewrite_logits_output

ASSETS = Path(__file__).resolve().parents[1] / "colorize_rt" / "assets"
SHIPPED = ("default.onnx", "default-int8.onnx", "default-l2.onnx")


def main(paths: list[str]) -> None:
    for path in paths or [str(ASSETS / name) for name in SHIPPED]:
        print(path, rewrite_logits_output(path))


if __name__ == "__main__":
    main(sys.argv[1:])
