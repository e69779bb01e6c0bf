"""On-disk result cache: keys, TTL, LRU eviction by total size, single-flight, persisted counters."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from colorize_rt.serve.cache import DiskCache, ResultCache, cache_key, format_cache_info, redact_url


def _key(**over):
    args = dict(model_sha256="m" * 64, method="classification", temperature=0.38, mode="fit", size=256)
    args.update(over)
    image = args.pop("image", b"image-bytes")
    return cache_key(image, **args)


def test_key_is_deterministic_and_covers_every_field():
    base = _key()
    assert base == _key() and len(base) == 64
    variants = [
        _key(image=b"other"),
        _key(model_sha256="n" * 64),
        _key(method="l2"),
        _key(temperature=0.5),
        _key(mode="tile"),
        _key(size=512),
        _key(extra={"reference": "abc"}),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert _key(temperature=0.38) == _key(temperature=0.380000001)  # formatted to 4 decimals


def test_roundtrip_and_ttl(tmp_path):
    disk = DiskCache(tmp_path, max_bytes=1 << 20, ttl_s=60)
    k = _key()
    assert disk.get(k) is None
    disk.put(k, b"x" * 100)
    assert disk.get(k) == b"x" * 100
    assert disk.usage() == {"entries": 1, "bytes": 100, "max_bytes": 1 << 20}
    path = next(tmp_path.glob("??/*.bin"))
    old = time.time() - 61
    os.utime(path, (old, old))  # written 61 s ago: past the TTL
    assert disk.get(k) is None
    assert not path.exists()


def test_lru_eviction_by_total_size(tmp_path):
    disk = DiskCache(tmp_path, max_bytes=3000, ttl_s=3600)
    keys = [_key(size=i) for i in range(4)]
    for i, k in enumerate(keys[:3]):
        disk.put(k, bytes([i]) * 1000)
        p = disk._path(k)
        os.utime(p, (1000.0 + i, p.stat().st_mtime))  # distinct access times, oldest first
    assert disk.get(keys[0]) is not None  # touch 0: now 1 is least recently used
    disk.put(keys[3], b"z" * 1000)  # 4000 > 3000: evict
    assert disk.get(keys[1]) is None
    assert all(disk.get(k) is not None for k in (keys[0], keys[2], keys[3]))
    assert disk.usage()["bytes"] == 3000
    # a fresh instance sees the same total (scan on start) and evicts what a lower limit requires
    small = DiskCache(tmp_path, max_bytes=1500, ttl_s=3600)
    assert small.evict() == 2 and small.usage()["entries"] == 1


def test_single_flight_32_threads(tmp_path):
    cache = ResultCache(DiskCache(tmp_path))
    calls: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def compute_for(k):
        def compute():
            with lock:
                calls[k] = calls.get(k, 0) + 1
            time.sleep(0.05)  # long enough for the others to pile up on the key
            return k.encode()

        return compute

    results, errors = [], []

    def worker(i):
        k = _key(size=i % 4)  # 4 distinct requests, 8 identical copies each
        barrier.wait()
        try:
            results.append((k, cache.get_or_compute(k, compute_for(k))))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 32 and all(v == k.encode() for k, (v, _) in results)
    assert sorted(calls.values()) == [1, 1, 1, 1]
    c = cache.counters
    assert (c["computes"], c["misses"], c["hits"]) == (4, 4, 28)
    assert not cache._key_locks  # per-key locks are released


def test_counters_persist_across_processes(tmp_path):
    cache = ResultCache(DiskCache(tmp_path))
    cache.get_or_compute("a" * 64, lambda: b"1")
    cache.get_or_compute("a" * 64, lambda: b"2")
    code = (
        "import json; from colorize_rt.serve.cache import ResultCache, DiskCache;"
        f"c = ResultCache(DiskCache({str(tmp_path)!r})); v, hit = c.get_or_compute('a' * 64, lambda: b'3');"
        "print(json.dumps([v.decode(), hit, c.info()['total']['hits']]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '["1", true, 2]'
    info = ResultCache(DiskCache(tmp_path)).info()
    assert info["backend"] == "disk"
    assert info["total"]["hits"] == 2 and info["total"]["misses"] == 1
    assert info["total"]["hit_rate"] == pytest.approx(2 / 3)
    text = format_cache_info(info)
    assert "cache backend: disk" in text and "2 / 3 total (67%)" in text


def test_from_env_reads_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("COLORIZE_RT_CACHE_MAX_BYTES", "12345")
    monkeypatch.setenv("COLORIZE_RT_CACHE_TTL", "60")
    monkeypatch.delenv("REDIS_URL", raising=False)
    cache = ResultCache.from_env()
    assert cache.redis is None and cache.backend == "disk"
    assert cache.disk.root == tmp_path / "c" and cache.disk.max_bytes == 12345 and cache.disk.ttl_s == 60


def test_redact_url():
    assert redact_url("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_redis_url_without_redis_py_falls_back_to_disk(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # makes `import redis` raise ImportError
    cache = ResultCache.from_env(redis_url="redis://127.0.0.1:1/0", cache_dir=tmp_path)
    assert cache.backend == "disk" and "pip install 'colorize-rt[serve]'" in cache.info()["last_redis_error"]
    assert cache.get_or_compute("k" * 64, lambda: b"v") == (b"v", False)
