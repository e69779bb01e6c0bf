"""Download and unpack a few wheels from PyPI for API checks that need no GPU (TensorRT bindings, tensorrt-stubs,
cuda-bindings), cached across runs.

Cache: ``$COLORIZE_TEST_WHEELS`` if set, else ``<colorize-rt cache>/test-wheels`` (docs/ENVIRONMENT.md).
``fetch`` returns None with the reason when pip cannot download (no network): tests then skip with it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from colorize_rt.core.paths import cache_dir


def wheel_cache() -> Path:
    return cache_dir("test-wheels", override_env="COLORIZE_TEST_WHEELS")


def fetch(spec: str, *, deps: bool = False, foreign: tuple[str, tuple[str, ...]] | None = None) -> tuple[list[Path], str]:
    """pip-download ``spec`` (one wheel, or with its dependencies) and unpack each wheel into its own folder.

    Args:
        spec: a requirement, e.g. ``"tensorrt-cu12-bindings==10.0.1"``.
        deps: also download its dependencies.
        foreign: (python version, platforms) to fetch a wheel for another interpreter (only read, never imported).

    Returns:
        (unpacked folders, "") or ([], why the download failed).
    """
    key = hashlib.sha256(f"{spec}|{deps}|{foreign}".encode()).hexdigest()[:16]
    root = wheel_cache() / key
    done = root / ".complete"
    if not done.is_file():
        dl = root / "dl"
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(dl), spec]
        if not deps:
            cmd.insert(4, "--no-deps")
        if foreign:
            cmd += ["--python-version", foreign[0]]
            for platform in foreign[1]:
                cmd += ["--platform", platform]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = sorted(dl.glob("*.whl")) if dl.is_dir() else []
        if proc.returncode != 0 or not wheels:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "is ignored" not in ln]
            return [], f"pip download {spec} failed: {lines[-1] if lines else proc.returncode}"
        for whl in wheels:
            with zipfile.ZipFile(whl) as zf:
                zf.extractall(root / whl.stem)
        done.write_text("\n".join(w.stem for w in wheels))
    return [root / stem for stem in done.read_text().splitlines()], ""
