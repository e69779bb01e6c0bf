"""Interactive UIs (Gradio, Streamlit) over the torch-free runtime, sharing one service layer
(:mod:`.service`) and one result cache (:mod:`.cache`).

    from colorize_rt.serve import launch
    launch("gradio")                 # http://127.0.0.1:7860/
    launch("streamlit", port=8501)   # http://127.0.0.1:8501/
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

UIS = ("gradio", "streamlit")
DEFAULT_PORTS = {"gradio": 7860, "streamlit": 8501}
STREAMLIT_SCRIPT = Path(__file__).with_name("streamlit_app.py")


def streamlit_command(host: str, port: int, max_upload_mb: float) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, upload limit in MB."""
    return [
        sys.executable, "-m", "streamlit", "run", str(STREAMLIT_SCRIPT),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(max(1, round(max_upload_mb))),
        "--global.developmentMode", "false", "--client.toolbarMode", "viewer",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip


def launch(
    ui: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    *,
    model: str = "default",
    backend: str = "auto",
    max_upload_mb: float = 20.0,
    max_pixels: int | None = None,
    budget_mb: float | None = None,
    slots: int | None = None,
    queue: int | None = None,
) -> int:
    """Serve the ``gradio`` or ``streamlit`` UI on ``host:port`` (localhost unless told otherwise) until
    interrupted; returns an exit code. ``share`` asks Gradio for a public link (Streamlit has none).
    ``max_pixels``, ``budget_mb``, ``slots`` and ``queue`` (``None``: the environment's or the default)
    bound each request and the server's memory (see ``colorize_rt.serve.admission``)."""
    if ui not in UIS:
        raise ValueError(f"unknown UI '{ui}': use one of {', '.join(UIS)}")
    port = port or DEFAULT_PORTS[ui]
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    limits = {
        "COLORIZE_RT_MAX_PIXELS": max_pixels,
        "COLORIZE_RT_MEMORY_BUDGET_MB": budget_mb,
        "COLORIZE_RT_SLOTS": slots,
        "COLORIZE_RT_QUEUE": queue,
    }
    os.environ.update({k: str(v) for k, v in limits.items() if v is not None})  # read by ColorizeService.from_env
    if ui == "gradio":
        from .gradio_app import serve
        from .service import ColorizeService

        os.environ.update(COLORIZE_RT_MODEL=str(model), COLORIZE_RT_BACKEND=backend, COLORIZE_RT_MAX_UPLOAD_MB=str(max_upload_mb))
        service = ColorizeService.from_env()
        service.open()  # an unusable model refuses to start (ModelUnavailable), instead of failing every request
        serve(service, host, port, share)
        return 0
    from ..core.lazy import require

    require("streamlit")
    if share:
        print("streamlit has no share links; serving on the given host only", file=sys.stderr)
    env = dict(
        os.environ,
        COLORIZE_RT_MODEL=str(model),
        COLORIZE_RT_BACKEND=backend,
        COLORIZE_RT_MAX_UPLOAD_MB=str(max_upload_mb),
    )
    from .service import ColorizeService

    ColorizeService(model=str(model), backend=backend).open()  # refuse to start with an unusable model
    print(f"colorize-rt streamlit UI on http://{host}:{port}/", flush=True)
    # Become the streamlit process (no orphaned child when this one is stopped with SIGTERM).
    os.execve(sys.executable, streamlit_command(host, port, max_upload_mb), env)
    return 0  # pragma: no cover - execve does not return
