"""The Gradio app's HTTP side in a real server process: 32 concurrent requests (no errors, no duplicate
work), upload limits, bad input, and Redis going away while the app runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from colorize_rt.serve import streamlit_command
from tests.runtime_support import identity_onnx
from tests.serve_support import AppProcess, sample_png

pytest.importorskip("gradio", reason="pip install 'colorize-rt[serve]'")
pytest.importorskip("torch", reason="the test model is exported with torch (the [train] extra)")
pytest.importorskip("skimage", reason="sample photos come from scikit-image (the [dev] extra)")
needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed (apt-get install redis-server)"
)


@pytest.fixture(scope="module")
def model(tiny_onnx):
    return tiny_onnx


@pytest.fixture(scope="module")
def app(model, tmp_path_factory, redis_server):
    url = redis_server.url if redis_server else ""
    proc = AppProcess("gradio", model, tmp_path_factory.mktemp("app"), url, extra=("--max-upload-mb", "2"))
    yield proc
    proc.stop()


def post(url: str, data: bytes):
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.headers.get("X-Cache"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, exc.read()


def stats(app) -> dict:
    with urllib.request.urlopen(app.url + "/api/stats", timeout=10) as resp:
        return json.loads(resp.read())["cache"]


def concurrent_round(app, images, n=32, temperature=0.3):
    url = app.url + f"/api/colorize?size=64&temperature={temperature}"
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: post(url, images[i % len(images)]), range(n)))


def test_32_concurrent_requests_no_errors_no_duplicate_work(app, redis_server):
    before = stats(app)["session"]
    images = [sample_png(112), sample_png(120)]  # 2 distinct requests, 16 identical copies each
    answers = concurrent_round(app, images)
    assert [a[0] for a in answers] == [200] * 32
    assert [a[1] for a in answers].count("miss") == 2
    assert len({a[2] for a in answers}) == 2  # identical requests got identical PNGs
    after = stats(app)
    assert after["session"]["computes"] - before["computes"] == 2
    assert after["session"]["hits"] - before["hits"] == 30
    assert after["backend"] == ("redis" if redis_server else "disk")


def test_upload_limit_and_bad_input(app):
    code, _, body = post(app.url + "/api/colorize", b"\0" * (3 * 1024 * 1024))
    assert code == 413 and b"the upload is 3,145,728 bytes; the upload limit is 2 MB (2,097,152 bytes)" in body
    code, _, body = post(app.url + "/api/colorize", b"GIF89a-but-not-really")
    assert code == 400 and b"not a usable image" in body
    code, _, body = post(app.url + "/api/colorize?mode=zoom", sample_png(32))
    assert code == 400 and b"unknown mode 'zoom'" in body


@needs_redis
def _request(url: str, method: str, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_other_methods_are_405_and_form_uploads_get_a_hint(app):
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        code, headers, body = _request(app.url + "/api/colorize", method, b"x" if method != "GET" else None)
        assert code == 405 and headers.get("allow") == "POST", (method, code, body[:200])
        assert json.loads(body) == {"error": f"use POST for /api/colorize, not {method}"}
    form = b"--b\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n" + sample_png(32) + b"\r\n--b--\r\n"
    code, _, body = _request(app.url + "/api/colorize", "POST", form, {"Content-Type": "multipart/form-data; boundary=b"})
    assert code == 400 and "--data-binary" in json.loads(body)["error"]
    code, _, _ = _request(app.url + "/api/colorize", "POST", sample_png(32), {"Content-Type": "image/png"})
    assert code == 200


@needs_redis
def test_redis_stopped_while_the_app_serves(app, redis_server):
    """Runs last in this module: it kills the module's redis-server."""
    assert stats(app)["backend"] == "redis"
    images = [sample_png(72), sample_png(80), sample_png(88)]
    with ThreadPoolExecutor(1) as bg:
        first = bg.submit(concurrent_round, app, images, 32, 0.5)
        redis_server.stop()  # while those requests are in flight
        answers = first.result() + concurrent_round(app, images, 32, 0.6)
    assert [a[0] for a in answers] == [200] * 64
    info = stats(app)
    assert info["backend"] == "disk (redis unavailable)" and info["session"]["redis_errors"] >= 1
    assert info["disk"]["entries"] >= 3  # results after the outage went to disk


def test_cli_usage_errors_are_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "colorize_rt.serve", "--ui", "tkinter"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("python -m colorize_rt.serve: error: Invalid value for '--ui'")
    assert "Traceback" not in out.stderr


def test_streamlit_command_is_headless_and_private():
    cmd = streamlit_command("127.0.0.1", 8501, 20.0)
    pairs = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.headless"] == "true"
    assert pairs["--browser.gatherUsageStats"] == "false" and pairs["--server.maxUploadSize"] == "20"


def test_colorize_rt_serve_subcommand_dispatches():
    code = "from colorize_rt.cli import main; main(['serve', '--ui', 'tkinter'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "colorize-rt serve: error: Invalid value for '--ui': 'tkinter' is not one of 'gradio', 'streamlit'."
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nosuch"], "the server's model cannot be used: unknown model 'nosuch'"),
        (["--model", "{bad}", "--backend", "cpu"], "the server's model cannot be used: --backend cpu failed to initialise"),
        (["--model", "{ident}", "--backend", "cpu"], "the server's model fails on a test image: Required inputs"),
    ],
)
def test_serve_refuses_to_start_with_an_unusable_model(tmp_path, args, needle):
    """Before: `serve --model nosuch` started, answered /healthz, then failed every request with a 400."""
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    ident = identity_onnx(tmp_path / "ident.onnx")
    args = [a.format(bad=bad, ident=ident) for a in args]
    code = f"from colorize_rt.cli import main; main(['serve', '--port', '1', *{args!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"colorize-rt serve: error: {needle}"), out.stderr


def test_a_model_failing_inside_the_service_is_a_503_not_a_400(tmp_path):
    from colorize_rt.serve.service import ColorizeService, ModelUnavailable

    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    service = ColorizeService(model=str(bad), backend="auto")
    with pytest.raises(ModelUnavailable, match="cannot open .*bad.onnx on the CPU") as info:
        service.engine("classification")
    assert info.value.status == 503
