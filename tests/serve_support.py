"""Helpers for the serve tests: free ports, a throwaway ``redis-server``, a UI server process, sample images."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 2xx/3xx; raise RuntimeError on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 400:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s ({last})")


class RedisServer:
    """A private ``redis-server`` on a free localhost port, no persistence; ``stop()`` kills it."""

    def __init__(self, workdir: str | Path, port: int | None = None):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class AppProcess:
    """``python -m colorize_rt.serve`` in a subprocess on a free port; logs go to a file."""

    def __init__(self, ui: str, model: str | Path, workdir: Path, redis_url: str = "", extra: tuple = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{ui}.log"
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", COLORIZE_RT_CACHE_DIR=str(workdir / "cache"))
        if redis_url:
            env["REDIS_URL"] = redis_url
        cmd = [sys.executable, "-m", "colorize_rt.serve", "--ui", ui, "--port", str(self.port),
               "--model", str(model), *extra]  # fmt: skip
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            wait_http(self.url + ("/healthz" if ui == "gradio" else "/_stcore/health"), 90, self.proc)
        except RuntimeError:
            self.stop()
            raise RuntimeError(self.log.read_text()[-3000:]) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sample_png(side: int = 128) -> bytes:
    """A real photo (skimage's astronaut, the [dev] extra) as PNG bytes, ``side`` x ``side``."""
    import cv2
    from skimage import data

    ok, buf = cv2.imencode(".png", cv2.resize(data.astronaut(), (side, side))[..., ::-1])
    assert ok
    return buf.tobytes()


def mean_chroma(rgb) -> float:
    """Mean CIE ab chroma of a uint8 RGB image (0 for gray)."""
    import cv2
    import numpy as np

    lab = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    return float(np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0).mean())
