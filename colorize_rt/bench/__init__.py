"""Benchmarks (``colorize-bench`` / ``make bench``): latency, throughput and memory of every backend on
the same models and inputs, interleaved so machine drift cancels; JSON + Markdown + PNG reports."""
