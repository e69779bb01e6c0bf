"""The HTTP API under hostile and careless input (issue 17), against real server processes and a real
redis-server: every probe gets a 4xx or a correct image (never a 5xx, never a white image), corrupted cache
entries heal, and admission control keeps the server's memory bounded."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.serve_support import AppProcess, mean_chroma, sample_png

pytest.importorskip("gradio", reason="pip install 'colorize-rt[serve]'")
pytest.importorskip("skimage", reason="sample photos come from scikit-image (the [dev] extra)")
psutil = pytest.importorskip("psutil", reason="RSS is measured with psutil")
needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed (apt-get install redis-server)"
)


def post(url: str, data: bytes, timeout: float = 300):
    """-> (status, headers, body)."""
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def get_stats(app) -> dict:
    with urllib.request.urlopen(app.url + "/api/stats", timeout=10) as resp:
        return json.loads(resp.read())


def assert_good_image(body: bytes, shape: tuple) -> np.ndarray:
    """A decodable PNG of the input's size that is neither white nor gray."""
    rgb = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert rgb.shape == shape
    assert rgb.mean() < 240 and mean_chroma(rgb) > 2.0
    return rgb


def assert_one_line_4xx(code: int, body: bytes, *needles: str) -> str:
    assert 400 <= code < 500, (code, body[:300])
    message = json.loads(body)["error"]
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, message
    return message


def gradient_png(width: int, height: int) -> bytes:
    """A large but tiny-file RGB PNG (smooth gradients compress to almost nothing)."""
    x = (np.arange(width, dtype=np.uint32) * 255 // max(1, width - 1)).astype(np.uint8)
    y = (np.arange(height, dtype=np.uint32) * 255 // max(1, height - 1)).astype(np.uint8)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = x[None, :]
    rgb[..., 1] = y[:, None]
    rgb[..., 2] = 128
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A ~100-byte PNG declaring ``width`` x ``height`` (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def app(tiny_onnx, tmp_path_factory, redis_server):
    """A server on the real Redis (disk cache fallback), 2 MB uploads, 512 MB memory budget."""
    url = redis_server.url if redis_server else ""
    extra = ("--max-upload-mb", "2", "--memory-budget-mb", "512")
    proc = AppProcess("gradio", tiny_onnx, tmp_path_factory.mktemp("app"), url, extra=extra)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log.read_text(), proc.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def disk_app(tiny_onnx, tmp_path_factory):
    """A server with the disk cache only."""
    workdir = tmp_path_factory.mktemp("disk-app")
    os.environ["COLORIZE_RT_BODY_TIMEOUT_S"] = "3"  # AppProcess copies the environment
    try:
        proc = AppProcess("gradio", tiny_onnx, workdir, "", extra=("--max-upload-mb", "2", "--memory-budget-mb", "1024"))
    finally:
        del os.environ["COLORIZE_RT_BODY_TIMEOUT_S"]
    proc.cache_dir = workdir / "cache"
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log.read_text(), proc.log.read_text()[-3000:]


# -- parameters ------------------------------------------------------------------------------------------
BAD_QUERIES = [
    ("size=7", "size must be an integer from 16 to 4096"),
    ("size=0", "size must be"),
    ("size=-64", "size must be"),
    ("size=1234567890123456789012", "size must be"),
    ("size=8192", "size must be"),
    ("size=100000", "size must be"),
    ("size=64.5", "size must be"),
    ("size=abc", "size must be"),
    ("size=", "size must be"),
    ("temperature=0", "temperature must be a number from 0.01 to 10"),
    ("temperature=nan", "temperature must be"),
    ("temperature=1e-5", "temperature must be"),
    ("temperature=1e-300", "temperature must be"),
    ("temperature=-1", "temperature must be"),
    ("temperature=inf", "temperature must be"),
    ("temperature=1e9", "temperature must be"),
    ("temperature=warm", "temperature must be"),
    ("mode=zoom", "unknown mode 'zoom'"),
    ("method=sepia", "unknown method 'sepia'"),
    ("method=transfer", "needs a reference image"),
    ("temp=0.5", "unknown parameter 'temp'"),
    ("size=64&size=99999", "parameter 'size' given 2 times"),
]


@pytest.mark.parametrize(("query", "needle"), BAD_QUERIES)
def test_bad_parameters_are_one_line_400(app, query, needle):
    code, _, body = post(f"{app.url}/api/colorize?{query}", sample_png(48))
    assert code == 400
    assert_one_line_4xx(code, body, needle)


def test_huge_size_is_refused_by_the_memory_budget_not_the_kernel(app):
    """size=4096 is inside the CLI's bounds, but the network alone would need about 6.5 GB."""
    code, _, body = post(f"{app.url}/api/colorize?size=4096", sample_png(48))
    assert code == 413
    assert_one_line_4xx(code, body, "needs about", "this server allows 512 MB")


@pytest.mark.parametrize("query", ["temperature=0.01&size=16", "temperature=10&size=64", "temperature=0.38&size=512"])
def test_edge_parameters_give_correct_images(app, query):
    code, headers, body = post(f"{app.url}/api/colorize?{query}", sample_png(64))
    assert code == 200, body[:300]
    assert_good_image(body, (64, 64, 3))


def test_tiny_temperatures_never_share_a_cached_white_image(app):
    """0.01 is the lowest temperature; keys use the validated float32 value, so close values differ."""
    png = sample_png(56)
    a = post(f"{app.url}/api/colorize?temperature=0.01&size=32", png)
    b = post(f"{app.url}/api/colorize?temperature=0.0101&size=32", png)
    assert a[0] == b[0] == 200
    assert a[1]["X-Key"] != b[1]["X-Key"]
    for _, _, body in (a, b):
        assert_good_image(body, (56, 56, 3))


# -- bodies and images -----------------------------------------------------------------------------------
def _short_body(app, half_close: bool) -> bytes:
    """POST a body 5000 bytes shorter than its Content-Length; returns the raw answer (may be empty)."""
    payload = sample_png(40)
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as s:
        head = (
            f"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(payload) + 5000}\r\nConnection: close\r\n\r\n"
        )
        s.sendall(head.encode() + payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_body_shorter_than_content_length_is_a_4xx_without_traceback(disk_app):
    t0 = time.monotonic()
    answer = _short_body(disk_app, half_close=False)  # the client waits: 408 once the body stalls (3 s here)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"the body stalled after" in answer and time.monotonic() - t0 < 20
    answer = _short_body(disk_app, half_close=True)  # the client closed its side: no 5xx, nothing logged
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:300]
    time.sleep(0.3)
    assert post(f"{disk_app.url}/api/colorize?size=32", sample_png(40))[0] == 200  # the server is fine
    assert "Traceback" not in disk_app.log.read_text()


def test_bomb_header_gets_413_with_a_message_fitting_serve(app):
    code, _, body = post(f"{app.url}/api/colorize", png_header_only(100_000, 100_000))
    assert code == 413
    assert_one_line_4xx(code, body, "declares a 100000x100000 canvas", "50 MP limit", "colorize-rt serve --max-pixels")


def test_animated_gif_is_refused_by_name(app):
    frames = [Image.new("RGB", (32, 32), (i * 60, 90, 200 - i * 50)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    code, _, body = post(f"{app.url}/api/colorize?size=32", buf.getvalue())
    assert_one_line_4xx(code, body, "animated GIF (3 frames)")


def test_tiled_mode_on_a_huge_image_is_bounded_in_cpu(disk_app):
    """144 tiles of 512 x 512 (38 MP through the network) is over the 16 MP per-request default."""
    code, _, body = post(f"{disk_app.url}/api/colorize?mode=tiled", gradient_png(5000, 5000))
    assert code == 413
    assert_one_line_4xx(code, body, "runs the network on 38 MP", "16 MP per request", "use mode=fit")
    code, _, body = post(f"{disk_app.url}/api/colorize?mode=tiled", sample_png(600))  # small tiled: fine
    assert code == 200
    assert_good_image(body, (600, 600, 3))


@pytest.mark.parametrize(
    ("width", "height", "mode"), [(1000, 80, "fit"), (3, 5000, "fit"), (3, 5000, "tiled"), (80, 1000, "tiled")]
)
def test_panoramas_and_strips_colorize(app, width, height, mode):
    """Any aspect ratio: the network always sees at least its minimum size (issue 17, item 5)."""
    import cv2
    from skimage import data

    rgb = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    code, _, body = post(f"{app.url}/api/colorize?mode={mode}&size=256", buf.getvalue())
    assert code == 200, body[:300]
    out = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert out.shape == (height, width, 3) and out.mean() < 240


# -- cache integrity -------------------------------------------------------------------------------------
def _damage(kind: str, entry: bytes) -> bytes:
    if kind == "garbage":
        return b"this is not a cache entry" * 10
    if kind == "truncated":
        return entry[: len(entry) // 2]
    if kind == "empty":
        return b""
    flipped = bytearray(entry)
    flipped[len(flipped) * 2 // 3] ^= 0x10
    return bytes(flipped)


DAMAGE = ["garbage", "truncated", "empty", "bitflip"]


def _heal_round(app, damage_store, kind: str, side: int):
    png = sample_png(side)
    url = f"{app.url}/api/colorize?size=32"
    code, headers, good = post(url, png)
    assert code == 200
    key = headers["X-Key"]
    corrupt_before = get_stats(app)["cache"]["session"]["corrupt"]
    damage_store(key, kind)
    code, headers, body = post(url, png)  # detected, deleted, recomputed
    assert code == 200 and headers["X-Cache"] == "miss"
    assert body == good
    assert get_stats(app)["cache"]["session"]["corrupt"] == corrupt_before + 1
    code, headers, body = post(url, png)  # healed: a verified hit
    assert code == 200 and headers["X-Cache"] == "hit" and body == good


@pytest.mark.parametrize("kind", DAMAGE)
def test_corrupt_disk_entry_heals(disk_app, kind):
    def damage(key, kind):
        path = disk_app.cache_dir / key[:2] / f"{key}.bin"
        path.write_bytes(_damage(kind, path.read_bytes()))

    _heal_round(disk_app, damage, kind, 40 + DAMAGE.index(kind) * 4)


@needs_redis
@pytest.mark.parametrize("kind", DAMAGE)
def test_corrupt_redis_entry_heals(app, redis_server, kind):
    import redis

    client = redis.Redis.from_url(redis_server.url)

    def damage(key, kind):
        name = "colorize-rt:result:" + key
        client.set(name, _damage(kind, client.get(name)))

    assert get_stats(app)["cache"]["backend"] == "redis"
    _heal_round(app, damage, kind, 60 + DAMAGE.index(kind) * 4)


# -- admission control -----------------------------------------------------------------------------------
class RssSampler:
    """Peak RSS of a process, sampled every 10 ms in a thread."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _concurrent(url: str, bodies: list[bytes]):
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: post(url, b), bodies))


def _check_answers(answers, height: int) -> list[int]:
    """Each answer is a 200 with an image of the input's height, or a one-line 503 with Retry-After."""
    codes = [a[0] for a in answers]
    assert set(codes) <= {200, 503}, codes
    assert 200 in codes
    for code, headers, body in answers:
        if code == 503:
            assert int(headers["Retry-After"]) >= 1
            message = json.loads(body)["error"]
            assert "busy" in message and "\n" not in message
        else:
            assert Image.open(io.BytesIO(body)).size[1] == height
    return codes


def test_admission_bounds_memory_and_queues(tiny_onnx, tmp_path):
    """8 concurrent 9 MP uploads against a 200 MB budget, 1 slot, a queue of 3: the server's RSS grows by
    at most about the budget; every request gets 200 or 503 + Retry-After; oversized ones get 413."""
    extra = ("--memory-budget-mb", "200", "--slots", "1", "--queue", "3")
    app = AppProcess("gradio", tiny_onnx, tmp_path, "", extra=extra)
    try:
        url = app.url + "/api/colorize?size=64"
        assert post(url, sample_png(64))[0] == 200  # warm up: model loaded, arena sized
        idle = psutil.Process(app.proc.pid).memory_info().rss
        bodies = [gradient_png(3000 + i, 3000) for i in range(8)]  # distinct: no single-flight sharing
        with RssSampler(app.proc.pid) as rss:
            answers = _concurrent(url, bodies)
        codes = _check_answers(answers, 3000)
        assert codes.count(503) >= 1  # 1 computing + 3 queued: the rest were told to come back
        grown = (rss.peak - idle) / 2**20
        assert grown < 200 * 1.5, f"RSS grew {grown:.0f} MB over idle with a 200 MB budget"
        stats = get_stats(app)["admission"]
        assert stats["budget_mb"] == 200 and stats["refused_busy"] >= 1 and stats["computing"] == 0
        code, _, body = post(url, gradient_png(4500, 4500))  # 20 MP x 20 B: over the budget alone
        assert_one_line_4xx(code, body, "needs about", "this server allows 200 MB")
        assert code == 413
    finally:
        app.stop()
    assert "Traceback" not in app.log.read_text()


@pytest.mark.slow
def test_eight_concurrent_49mp_uploads_keep_rss_under_3gb(tiny_onnx, tmp_path):
    """Issue 17's probe with the default admission settings: eight 7000x7000 PNGs at once."""
    app = AppProcess("gradio", tiny_onnx, tmp_path, "", extra=("--max-upload-mb", "20"))
    try:
        url = app.url + "/api/colorize"
        assert post(url, sample_png(64))[0] == 200
        bodies = [gradient_png(7000, 7000 - i) for i in range(8)]
        assert max(len(b) for b in bodies) < 1 << 20
        with RssSampler(app.proc.pid) as rss:
            answers = _concurrent(url, bodies)
        codes = [a[0] for a in answers]
        assert set(codes) <= {200, 503}, codes
        assert 200 in codes
        assert all(int(h["Retry-After"]) >= 1 for code, h, _ in answers if code == 503)
        assert rss.peak < 3 * 2**30, f"peak RSS {rss.peak / 2**30:.2f} GB"
        print(f"peak RSS {rss.peak / 2**30:.2f} GB; answers {codes}; {get_stats(app)['admission']}")
    finally:
        app.stop()
    assert "Traceback" not in app.log.read_text()


def test_stats_report_admission_and_corrupt_counter(app):
    stats = get_stats(app)
    assert {"corrupt", "hits", "misses"} <= set(stats["cache"]["session"])
    assert {"budget_mb", "slots", "queue", "computing", "waiting", "refused_busy"} <= set(stats["admission"])
