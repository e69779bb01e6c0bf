"""Thin wrapper: ``python -m benchmarks.bench [--quick]`` is ``colorize-bench`` (colorize_rt/bench/cli.py)."""

from colorize_rt.bench.cli import main

if __name__ == "__main__":
    main()
