"""Result cache against a real redis-server (started privately on a free localhost port)."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from colorize_rt.serve.cache import DiskCache, RedisCache, ResultCache, cache_info, unseal
from tests.serve_support import RedisServer, free_port

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed (apt-get install redis-server)"
)
redis = pytest.importorskip("redis", reason="redis-py not installed (pip install 'colorize-rt[serve]')")


@pytest.fixture
def server(tmp_path):
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def test_uses_redis_when_reachable(server, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", server.url)
    cache = ResultCache.from_env(cache_dir=tmp_path / "disk", ttl_s=3600)
    assert cache.backend == "redis"
    value, hit = cache.get_or_compute("k" * 64, lambda: b"payload")
    assert (value, hit) == (b"payload", False)
    assert cache.get_or_compute("k" * 64, lambda: b"other") == (b"payload", True)
    client = redis.Redis.from_url(server.url)
    assert unseal(client.get("colorize-rt:result:" + "k" * 64)) == b"payload"
    assert 3500 < client.ttl("colorize-rt:result:" + "k" * 64) <= 3600
    assert cache.disk.usage()["entries"] == 0  # nothing went to disk
    monkeypatch.setenv("COLORIZE_RT_CACHE_DIR", str(tmp_path / "disk"))
    info = cache_info()  # what `colorize-rt --info` shows
    assert info["backend"] == "redis" and info["redis_url"] == server.url
    assert info["total"]["hits"] == 1 and info["total"]["misses"] == 1


def test_unreachable_redis_falls_back_to_disk(tmp_path):
    cache = ResultCache(DiskCache(tmp_path), RedisCache(f"redis://127.0.0.1:{free_port()}/0"))
    assert cache.backend == "disk (redis unavailable)"
    assert cache.get_or_compute("k" * 64, lambda: b"v") == (b"v", False)
    assert unseal(cache.disk.get("k" * 64)) == b"v"
    assert "ConnectionError" in cache.info()["last_redis_error"]


def test_redis_stopped_mid_run_never_fails_a_request(server, tmp_path):
    # retry_s is far longer than the workers run after the stop, even on a slow, busy host: the
    # cache must still be on disk when they finish (0.3 s was too short under a loaded CI run)
    retry_s = 3.0
    cache = ResultCache(DiskCache(tmp_path / "disk"), RedisCache(server.url), retry_s=retry_s)
    assert cache.backend == "redis"
    errors, done = [], []
    stopped = threading.Event()

    def worker(w):
        for i in range(40):
            key = f"{w:02d}{i:02d}".ljust(64, "0")
            after_stop = stopped.is_set()
            try:
                value, _ = cache.get_or_compute(key, lambda key=key: key.encode())
                assert value == key.encode()
                done.append((key, after_stop))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    while len(done) < 60:
        time.sleep(0.005)
    server.stop()  # kill -9 the server while requests are in flight
    stopped.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(done) == 8 * 40
    assert cache.backend == "disk (redis unavailable)"
    assert cache.counters["redis_errors"] >= 1
    after = [k for k, was_stopped in done if was_stopped]
    assert after and all(unseal(cache.disk.get(k)) == k.encode() for k in after)  # served and stored on disk

    # Redis comes back on the same port: once retry_s has passed the cache uses it again
    server.start()
    deadline = time.monotonic() + retry_s + 5.0
    while cache.backend != "redis" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.backend == "redis"
    assert cache.get_or_compute("z" * 64, lambda: b"back") == (b"back", False)
    assert unseal(redis.Redis.from_url(server.url).get("colorize-rt:result:" + "z" * 64)) == b"back"
