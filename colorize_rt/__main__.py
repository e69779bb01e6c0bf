"""``python -m colorize_rt ...``: the same as ``colorize-rt ...``."""

from .cli import main

main()
