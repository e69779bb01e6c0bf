"""``make bench`` entry: the benchmark code lives in ``colorize_rt.bench`` (so the installed
``colorize-bench`` script works); results are committed under ``benchmarks/results/<machine-tag>/``."""
