"""Result cache: Redis when ``REDIS_URL`` is set and reachable, else an on-disk LRU cache.

Keys are the SHA-256 of (image bytes, model sha256, method, temperature, mode, size, extras); values
are opaque bytes (the service stores encoded PNGs). Entries expire after a TTL (default 7 days).

Every stored entry carries a checksum (``MAGIC`` + SHA-256 of the value + the value) that is checked on
every read, from Redis and from disk alike: a garbage, empty, truncated or bit-flipped entry is deleted,
counted (``corrupt``) and recomputed, so a damaged entry heals on the next request.

If Redis fails mid-run the request is served from / stored to the disk cache instead and Redis is
retried after ``retry_s`` seconds, so a Redis outage never fails a request.

"No duplicate work for identical requests" is per-process single-flight: one lock per cache key, so
concurrent identical requests in one server process compute once and the rest read the stored
result. Separate processes sharing one Redis may each compute a key once (no cross-process lock).

Hit/miss counters are kept per process (``session``) and accumulated in ``stats.json`` in the disk
cache folder (``total``), which ``colorize-rt --info`` reads through :func:`cache_info`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.lazy import MissingDependency, require
from ..core.paths import cache_dir
from ..runtime.limits import TEMPERATURE

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 7 * 24 * 3600
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB of results on disk
KEY_VERSION = "colorize-rt-cache/v2"  # v2: validated float32 temperature in the key, checksummed entries
COUNTERS = ("hits", "misses", "computes", "redis_errors", "corrupt")
MAGIC = b"CRTC1\n"  # entry = MAGIC + sha256(value) (32 bytes) + value


def seal(value: bytes) -> bytes:
    """A value as stored: ``MAGIC`` + its SHA-256 + the value."""
    return MAGIC + hashlib.sha256(value).digest() + value


def unseal(entry: bytes) -> bytes | None:
    """The value of a stored entry, or ``None`` if the entry is damaged (bad header or checksum)."""
    head = len(MAGIC) + 32
    if len(entry) < head or not entry.startswith(MAGIC):
        return None
    value = entry[head:]
    return value if hashlib.sha256(value).digest() == entry[len(MAGIC) : head] else None


def cache_key(
    image_bytes: bytes,
    *,
    model_sha256: str,
    method: str,
    temperature: float,
    mode: str,
    size: int,
    extra: dict | None = None,
) -> str:
    """SHA-256 hex digest identifying one colorization request.

    The temperature is validated (``runtime.limits.TEMPERATURE``: finite, 0.01 to 10) and keyed exactly as
    the network receives it (float32), so two temperatures share a key only if they give the same result.
    """
    t = float(np.float32(TEMPERATURE.check(temperature)))
    fields = {
        "v": KEY_VERSION,
        "image": hashlib.sha256(image_bytes).hexdigest(),
        "model": model_sha256,
        "method": method,
        "temperature": repr(t),
        "mode": mode,
        "size": int(size),
        "extra": extra or {},
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def redact_url(url: str) -> str:
    """Drop the password from a Redis URL for display."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class DiskCache:
    """Files ``<root>/<k[:2]>/<k>.bin``; mtime = write time (TTL), atime = last read (LRU order).

    atime is set explicitly with ``os.utime`` on every read, so ``noatime``/``relatime`` mounts do not
    matter. When the total size passes ``max_bytes`` the least recently used entries are removed.
    """

    name = "disk"

    def __init__(self, root: str | Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES, ttl_s: float = DEFAULT_TTL_S):
        # created on the first write, so reading the cache (colorize-rt --info) creates no folders
        self.root = Path(root) if root is not None else cache_dir("results", "COLORIZE_RT_CACHE_DIR")
        self.max_bytes = int(max_bytes)
        self.ttl_s = float(ttl_s)
        self._lock = threading.Lock()
        self._total = sum(size for _, size, _ in self._scan())

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.bin"

    def _scan(self) -> Iterator[tuple[Path, int, os.stat_result]]:
        if not self.root.is_dir():
            return
        for p in self.root.glob("??/[!.]*.bin"):
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                yield p, st.st_size, st

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            st = path.stat()
            if time.time() - st.st_mtime > self.ttl_s:
                self._remove(path, st.st_size)
                return None
            data = path.read_bytes()
            os.utime(path, (time.time(), st.st_mtime))
        except FileNotFoundError:
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        old = path.stat().st_size if path.exists() else 0
        atomic_write_bytes(path, data)
        with self._lock:
            self._total += len(data) - old
            over = self._total > self.max_bytes
        if over:
            self.evict()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            self._remove(path, path.stat().st_size)

    def _remove(self, path: Path, size: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            with self._lock:
                self._total -= size

    def evict(self) -> int:
        """Drop expired entries, then least recently read ones until under ``max_bytes``; returns count."""
        with self._lock:
            now = time.time()
            entries, removed, total = [], 0, 0
            for p, size, st in self._scan():
                if now - st.st_mtime > self.ttl_s:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                        removed += 1
                    continue
                entries.append((st.st_atime, p, size))
                total += size
            entries.sort()
            for _, p, size in entries:
                if total <= self.max_bytes:
                    break
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed += 1
                total -= size
            self._total = total
            return removed

    def usage(self) -> dict:
        files = list(self._scan())
        return {"entries": len(files), "bytes": sum(s for _, s, _ in files), "max_bytes": self.max_bytes}


class RedisCache:
    """Values under ``<prefix><key>`` with ``SET ... EX ttl``; short socket timeouts so an outage is quick."""

    name = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: float = DEFAULT_TTL_S,
        prefix: str = "colorize-rt:result:",
        timeout_s: float = 0.5,
    ):
        redis = require("redis")
        self.url = url
        self.ttl_s = int(ttl_s)
        self.prefix = prefix
        self.errors = (redis.exceptions.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def ping(self) -> None:
        self.client.ping()

    def get(self, key: str) -> bytes | None:
        return self.client.get(self.prefix + key)

    def put(self, key: str, data: bytes) -> None:
        self.client.set(self.prefix + key, data, ex=max(1, self.ttl_s))

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)


class StatsFile:
    """Counters accumulated across processes in a JSON file (read-modify-write under ``flock``)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        return {k: int(data.get(k, 0)) for k in COUNTERS}

    def add(self, delta: dict[str, int]) -> None:
        lock_path = self.path.with_suffix(".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(lock_path, "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                data = self.read()
                for k, v in delta.items():
                    data[k] = data.get(k, 0) + v
                atomic_write_text(self.path, json.dumps(data))
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)


def _hit_rate(c: dict[str, int]) -> float:
    n = c["hits"] + c["misses"]
    return c["hits"] / n if n else 0.0


class ResultCache:
    """Redis-first cache with disk fallback, per-key single-flight and hit-rate counters."""

    def __init__(self, disk: DiskCache, redis: RedisCache | None = None, retry_s: float = 30.0):
        self.disk = disk
        self.redis = redis
        self.retry_s = retry_s
        self.stats_file = StatsFile(disk.root / "stats.json")
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._key_locks: dict[str, list] = {}
        self._redis_down_until = 0.0
        self.last_redis_error: str | None = None
        if redis is not None:
            try:
                redis.ping()
            except redis.errors as exc:  # not reachable at start: disk until the retry
                self._mark_down(exc, count=False)

    @classmethod
    def from_env(
        cls,
        redis_url: str | None = None,
        cache_dir: str | Path | None = None,
        max_bytes: int | None = None,
        ttl_s: float | None = None,
    ) -> ResultCache:
        """Build from arguments, falling back to ``REDIS_URL``, ``COLORIZE_RT_CACHE_DIR``,
        ``COLORIZE_RT_CACHE_MAX_BYTES`` and ``COLORIZE_RT_CACHE_TTL`` (seconds)."""
        env = os.environ
        ttl = float(ttl_s if ttl_s is not None else env.get("COLORIZE_RT_CACHE_TTL", DEFAULT_TTL_S))
        max_b = int(max_bytes if max_bytes is not None else env.get("COLORIZE_RT_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES))
        disk = DiskCache(cache_dir, max_bytes=max_b, ttl_s=ttl)
        url = redis_url if redis_url is not None else env.get("REDIS_URL", "")
        if not url:
            return cls(disk)
        try:
            redis = RedisCache(url, ttl_s=ttl)
        except MissingDependency as exc:  # REDIS_URL set but redis-py missing: the disk cache still works
            log.warning("%s; using the disk cache", exc)
            cache = cls(disk)
            cache.last_redis_error = str(exc)
            return cache
        return cls(disk, redis)

    # -- backend selection -------------------------------------------------------------------
    def _redis_usable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _mark_down(self, exc: BaseException, count: bool = True) -> None:
        self._redis_down_until = time.monotonic() + self.retry_s
        self.last_redis_error = f"{type(exc).__name__}: {exc}"
        if count:
            self._bump({"redis_errors": 1})
        log.warning("redis unavailable (%s); using the disk cache for %.0f s", self.last_redis_error, self.retry_s)

    @property
    def backend(self) -> str:
        if self.redis is None:
            return "disk"
        return "redis" if self._redis_usable() else "disk (redis unavailable)"

    # -- raw get/put ----------------------------------------------------------------------------
    def _checked(self, store, key: str, entry: bytes | None) -> bytes | None:
        """The value of ``entry`` read from ``store``; a damaged entry is deleted and counted."""
        if entry is None:
            return None
        value = unseal(entry)
        if value is None:
            log.warning("corrupt %s cache entry %s (%d bytes): deleted, recomputing", store.name, key[:16], len(entry))
            self._bump({"corrupt": 1})
            store.delete(key)
        return value

    def get(self, key: str) -> bytes | None:
        """The verified value under ``key``, or ``None`` (missing, expired or damaged)."""
        if self._redis_usable():
            try:
                value = self._checked(self.redis, key, self.redis.get(key))
                if value is not None:
                    return value
            except self.redis.errors as exc:
                self._mark_down(exc)
        return self._checked(self.disk, key, self.disk.get(key))

    def put(self, key: str, data: bytes) -> None:
        entry = seal(data)
        if self._redis_usable():
            try:
                self.redis.put(key, entry)
                return
            except self.redis.errors as exc:
                self._mark_down(exc)
        self.disk.put(key, entry)

    # -- single flight ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._lock:
            entry = self._key_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._key_locks[key]

    def get_or_compute(self, key: str, compute: Callable[[], bytes]) -> tuple[bytes, bool]:
        """Return ``(value, was_cached)``; identical concurrent keys compute once in this process."""
        with self._key_lock(key):
            data = self.get(key)
            if data is not None:
                self._bump({"hits": 1})
                return data, True
            data = compute()
            self.put(key, data)
            self._bump({"misses": 1, "computes": 1})
            return data, False

    # -- counters --------------------------------------------------------------------------------
    def _bump(self, delta: dict[str, int]) -> None:
        with self._lock:
            for k, v in delta.items():
                self._counters[k] += v
        try:
            self.stats_file.add(delta)
        except OSError as exc:  # counters must never fail a request
            log.warning("could not update cache stats: %s", exc)

    @property
    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def info(self) -> dict:
        session, total = self.counters, self.stats_file.read()
        return {
            "backend": self.backend,
            "redis_url": redact_url(self.redis.url) if self.redis else None,
            "last_redis_error": self.last_redis_error,
            "disk_dir": str(self.disk.root),
            "disk": self.disk.usage(),
            "ttl_s": self.disk.ttl_s,
            "session": {**session, "hit_rate": _hit_rate(session)},
            "total": {**total, "hit_rate": _hit_rate(total)},
        }


def cache_info() -> dict:
    """Cache state and hit-rate counters for ``colorize-rt --info`` (configured from the environment)."""
    return ResultCache.from_env().info()


def format_cache_info(info: dict) -> str:
    """One short human-readable block for ``--info`` and the UIs."""
    t, s = info["total"], info["session"]
    lines = [
        f"cache backend: {info['backend']}" + (f" ({info['redis_url']})" if info["redis_url"] else ""),
        f"cache dir: {info['disk_dir']} ({info['disk']['entries']} entries, "
        f"{info['disk']['bytes'] / 1e6:.1f} / {info['disk']['max_bytes'] / 1e6:.0f} MB, "
        f"ttl {info['ttl_s'] / 86400:g} d)",
        f"cache hits: {t['hits']} / {t['hits'] + t['misses']} total ({t['hit_rate']:.0%}); "
        f"this process {s['hits']} / {s['hits'] + s['misses']} ({s['hit_rate']:.0%})",
    ]
    return "\n".join(lines)
