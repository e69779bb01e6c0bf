"""HTTP endpoints beside the UI: ``/healthz``, ``/api/stats`` and ``POST /api/colorize`` (raw image bytes in
the body; ``method``, ``temperature``, ``mode``, ``size``, ``hints``, ``palette`` as query parameters; the colorized PNG back with
``X-Cache: hit|miss``). Imports FastAPI, so it is only imported when the Gradio app is built.

Every answer to a bad request is a 4xx with a one-line JSON ``{"error": ...}``:

* 400: a bad parameter (checked against the same bounds as the command line, ``runtime.limits``) or image;
* 408: a body that stalls (``COLORIZE_RT_BODY_TIMEOUT_S``, default 30 s);
* 405 with ``Allow: POST``: another method on ``/api/colorize``;
* 415: a video (``runtime.video.io.video_signature``): this endpoint takes one image;
* 413: over a limit (upload size, canvas, memory or network budget);
* 503 with ``Retry-After``: the server is full (see :mod:`.admission`).
"""

from __future__ import annotations

import asyncio
import logging
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..core.constants import DEFAULT_T
from ..runtime.video.io import video_signature
from .admission import Overloaded
from .service import DEFAULT_SIZE, ColorizeService, UserError

log = logging.getLogger(__name__)

# hints: a JSON list of {"x", "y", "color", "radius"} (URL-encoded); palette: "#hex,#hex,..." (runtime.guidance.spec)
PARAMS = {"method": "classification", "temperature": DEFAULT_T, "mode": "fit", "size": DEFAULT_SIZE}
PARAMS |= {"hints": None, "palette": None}
DEFAULT_BODY_TIMEOUT_S = 30.0  # the whole upload must arrive within this (COLORIZE_RT_BODY_TIMEOUT_S)


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """A one-line JSON error answer."""
    return JSONResponse({"error": " ".join(str(message).split())}, status, headers=headers)


def parse_params(query) -> dict:
    """Query parameters -> keyword arguments of ``ColorizeService.colorize`` (values still strings; the
    service validates them). Unknown or repeated parameters are a UserError."""
    out = {}
    for name in query.keys():
        if name not in PARAMS:
            raise UserError(f"unknown parameter '{name}'; known: {', '.join(PARAMS)}")
        values = query.getlist(name)
        if len(values) > 1:
            raise UserError(f"parameter '{name}' given {len(values)} times")
        out[name] = values[0]
    return {name: out.get(name, default) for name, default in PARAMS.items()}


class BodyError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int, limit_mb: float, timeout_s: float) -> bytes:
    """The request body, keeping at most ``limit`` bytes (an oversized upload costs no memory and the
    client still gets its 413: answering before the body is read would reset its connection). A body
    that stalls (e.g. shorter than its Content-Length on an open connection) is a 408 after ``timeout_s``;
    one cut short by the client closing its side is a 400 (uvicorn may drop the answer; nothing is logged
    beyond one info line)."""
    chunks, total = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                total += len(chunk)
                if total <= limit:
                    chunks.append(chunk)
    except TimeoutError:
        declared = request.headers.get("content-length")
        raise BodyError(408, f"the body stalled after {total} of {declared or '?'} bytes ({timeout_s:g} s)") from None
    except ClientDisconnect:
        declared = request.headers.get("content-length")
        log.info("client disconnected after %d of %s body bytes", total, declared or "?")
        raise BodyError(400, f"the body ended after {total} bytes (Content-Length {declared})") from None
    if total > limit:
        raise BodyError(413, f"the upload is {total:,} bytes; the upload limit is {limit_mb:g} MB ({limit:,} bytes)")
    return b"".join(chunks)


def create_api(service: ColorizeService) -> FastAPI:
    app = FastAPI(title="colorize-rt", docs_url=None, redoc_url=None, openapi_url=None)
    body_timeout_s = float(os.environ.get("COLORIZE_RT_BODY_TIMEOUT_S", DEFAULT_BODY_TIMEOUT_S))

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/api/stats")
    def stats() -> dict:
        return {"cache": service.cache_stats(), "admission": service.admission.stats(), "backend": service.backend_text()}

    @app.post("/api/colorize")
    async def colorize(request: Request) -> Response:
        try:
            body = await read_body(request, service.max_upload_bytes, service.max_upload_mb, body_timeout_s)
        except BodyError as exc:
            return error(exc.status, str(exc))
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            return error(400, "send the image itself as the body (curl --data-binary @photo.png), not a form upload (curl -F)")
        kind = video_signature(body)
        if kind:
            hint = "colorize videos with `colorize-rt clip.mp4` or the UI's Video tab"
            return error(415, f"the upload is a video ({kind}); /api/colorize takes one image: {hint}")
        try:
            params = parse_params(request.query_params)
            if params["method"] == "transfer":
                raise UserError("method 'transfer' needs a reference image: use the UI")
            res = await run_in_threadpool(service.colorize, body, **params)
        except UserError as exc:
            return error(exc.status, str(exc))
        except Overloaded as exc:
            return error(503, str(exc), {"Retry-After": str(exc.retry_after_s)})
        headers = {"X-Cache": "hit" if res.cached else "miss", "X-Key": res.key}
        return Response(res.png, media_type="image/png", headers=headers)

    # Without these, the Gradio app mounted at / answers other methods with its own 404.
    @app.api_route("/api/colorize", methods=["GET", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def colorize_wrong_method(request: Request) -> Response:
        return error(405, f"use POST for /api/colorize, not {request.method}", {"Allow": "POST"})

    return app
