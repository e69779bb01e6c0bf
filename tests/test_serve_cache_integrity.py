"""Checked cache entries (disk and a real redis-server) and hash-first cache hits, in-process."""

from __future__ import annotations

import shutil

import pytest

from colorize_rt.serve import service as service_module
from colorize_rt.serve.cache import DiskCache, RedisCache, ResultCache, cache_key, seal, unseal
from colorize_rt.serve.service import ColorizeService, UserError
from tests.serve_support import RedisServer, sample_png

DAMAGE = {
    "garbage": lambda e: b"\x00garbage\xff" * 7,
    "truncated": lambda e: e[: len(e) - 3],
    "empty": lambda e: b"",
    "bitflip": lambda e: e[:-5] + bytes([e[-5] ^ 0x01]) + e[-4:],
    "header only": lambda e: e[:38],
}


def test_seal_roundtrip_and_every_damage_is_detected():
    value = b"\x89PNG payload" * 50
    entry = seal(value)
    assert unseal(entry) == value
    for name, damage in DAMAGE.items():
        assert unseal(damage(entry)) is None, name


def _heal(cache: ResultCache, raw_get, raw_set):
    key = "c" * 64
    assert cache.get_or_compute(key, lambda: b"result") == (b"result", False)
    for n, damage in enumerate(DAMAGE.values(), start=1):
        raw_set(key, damage(raw_get(key)))
        assert cache.get_or_compute(key, lambda: b"result") == (b"result", False)  # detected, recomputed
        assert cache.counters["corrupt"] == n
        assert cache.get_or_compute(key, lambda: b"other") == (b"result", True)  # healed
    assert cache.info()["total"]["corrupt"] == len(DAMAGE)


def test_disk_entries_are_checked(tmp_path):
    cache = ResultCache(DiskCache(tmp_path / "disk"))
    _heal(cache, lambda k: cache.disk._path(k).read_bytes(), lambda k, v: cache.disk._path(k).write_bytes(v))


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed (apt-get install redis-server)")
def test_redis_entries_are_checked(tmp_path):
    redis = pytest.importorskip("redis", reason="redis-py not installed (pip install 'colorize-rt[serve]')")
    with RedisServer(tmp_path / "redis") as server:
        cache = ResultCache(DiskCache(tmp_path / "disk"), RedisCache(server.url))
        client = redis.Redis.from_url(server.url)
        name = "colorize-rt:result:"
        _heal(cache, lambda k: client.get(name + k), lambda k, v: client.set(name + k, v))
        assert cache.disk.usage()["entries"] == 0  # all of it went through Redis


def test_key_uses_the_validated_temperature():
    args = {"model_sha256": "m" * 64, "method": "classification", "mode": "fit", "size": 256}
    assert cache_key(b"x", temperature=0.01, **args) != cache_key(b"x", temperature=0.0101, **args)
    for bad in (0.0, 1e-5, 1e-300, float("nan"), float("inf"), -1.0, 1e9):
        with pytest.raises(ValueError, match="temperature must be"):
            cache_key(b"x", temperature=bad, **args)


def test_a_cache_hit_decodes_nothing(tiny_onnx, tmp_path, monkeypatch):
    svc = ColorizeService(model=str(tiny_onnx), cache=ResultCache(DiskCache(tmp_path)))
    png = sample_png(72)
    first = svc.colorize(png, size=32)
    assert not first.cached

    def no_decoding(*a, **k):
        raise AssertionError("a cache hit must not decode the upload")

    monkeypatch.setattr(service_module.api, "read_image", no_decoding)
    monkeypatch.setattr(service_module, "image_header", no_decoding)
    again = svc.colorize(png, size=32)
    assert again.cached and again.png == first.png
    with pytest.raises(AssertionError, match="must not decode"):  # a miss does decode
        svc.colorize(png, size=40)


def test_service_rejects_bad_parameters_before_any_work(tiny_onnx, tmp_path):
    svc = ColorizeService(model=str(tiny_onnx), cache=ResultCache(DiskCache(tmp_path)))
    for kwargs in ({"size": 7}, {"size": 10**22}, {"temperature": 0}, {"temperature": float("nan")}):
        with pytest.raises(UserError, match="must be"):
            svc.colorize(b"not even an image", **kwargs)
    assert svc.cache.counters["misses"] == 0
