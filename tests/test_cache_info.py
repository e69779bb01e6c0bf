"""`colorize-rt --info` shows the result cache's backend and hit-rate counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from colorize_rt.serve.cache import DiskCache, ResultCache


def _info(tmp_path, *extra):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["COLORIZE_RT_CACHE_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "colorize_rt", "--info", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_info_shows_cache_hit_rate(tmp_path):
    cache = ResultCache(DiskCache(tmp_path))
    for _ in range(3):
        cache.get_or_compute("a" * 64, lambda: b"x")
    cache.get_or_compute("b" * 64, lambda: b"y")
    out = _info(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "cache backend: disk" in out.stdout
    assert "cache hits: 2 / 4 total (50%)" in out.stdout
    data = json.loads(_info(tmp_path, "--json").stdout)
    assert data["cache"]["total"]["hits"] == 2 and data["cache"]["total"]["hit_rate"] == 0.5
