"""Helpers for the ``colorize-rt batch`` tests: a worker that dies once on purpose, a real S3 server, file sets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from colorize_rt.core.atomic import atomic_path
from colorize_rt.runtime.batch.paths import output_name
from colorize_rt.runtime.batch.worker import ColorizeWorker

ROOT = Path(__file__).resolve().parents[1]


class CrashOnceWorker(ColorizeWorker):
    """Kills its own process (``os._exit``) on its first visit to the source ``extra["crash_at"]``, in the
    middle of writing its output (the atomic writer's temp file half written); the marker file
    ``extra["crash_marker"]`` makes it happen once across restarts."""

    def process(self, rel: str, data: bytes) -> dict:
        marker = self.settings.extra["crash_marker"]
        if rel == self.settings.extra["crash_at"] and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            with atomic_path(self.settings.dst.join(output_name(rel, self.settings.fmt))) as tmp:
                tmp.write_bytes(data[: len(data) // 2])
                os._exit(1)
        return super().process(rel, data)


def files_under(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder`` outside ``_manifest/``."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] != "_manifest"
    }


def temp_files(folder: Path) -> list[Path]:
    """Hidden files left under ``folder`` (an atomic writer's temp files start with a dot)."""
    return [p for p in folder.rglob(".*") if p.is_file()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's S3 server (a real HTTP S3 endpoint) in a subprocess on a free port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def __enter__(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("moto server did not start")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def storage_options(self) -> dict:
        return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": self.url}}


def run_cli(args: list[str], timeout: float = 120, env: dict | None = None, code: str | None = None):
    """``colorize-rt batch ARGS`` in a subprocess (``code``: Python to run first, e.g. hiding a module)."""
    prelude = (code or "") + "\nfrom colorize_rt.cli import main\nmain(['batch'] + sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", "import sys\n" + prelude, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
