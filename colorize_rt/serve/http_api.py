"""HTTP endpoints beside the UI: ``/healthz``, ``/api/stats`` and ``POST /api/colorize`` (raw image bytes in
the body; ``method``, ``temperature``, ``mode``, ``size`` as query parameters; the colorized PNG back with
``X-Cache: hit|miss``). Imports FastAPI, so it is only imported when the Gradio app is built."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..core.constants import DEFAULT_T
from .service import DEFAULT_SIZE, ColorizeService, UserError


def create_api(service: ColorizeService) -> FastAPI:
    app = FastAPI(title="colorize-rt", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/api/stats")
    def stats() -> dict:
        return {"cache": service.cache_stats(), "backend": service.backend_text()}

    @app.post("/api/colorize")
    async def colorize(
        request: Request,
        method: str = "classification",
        temperature: float = DEFAULT_T,
        mode: str = "fit",
        size: int = DEFAULT_SIZE,
    ) -> Response:
        if method == "transfer":
            return JSONResponse({"error": "method 'transfer' needs a reference image: use the UI"}, 400)
        # Read in chunks and keep at most the limit: an oversized upload costs no memory, and the client
        # still gets the 413 (answering before the body is read would reset its connection).
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total <= service.max_upload_bytes:
                chunks.append(chunk)
        if total > service.max_upload_bytes:
            return JSONResponse({"error": f"the upload is {total / 1048576:.1f} MB; the upload limit is "
                                          f"{service.max_upload_mb:g} MB"}, 413)  # fmt: skip
        body = b"".join(chunks)
        try:
            res = await run_in_threadpool(service.colorize, body, method=method, temperature=temperature, mode=mode, size=size)
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, 413 if "upload limit" in str(exc) else 400)
        headers = {"X-Cache": "hit" if res.cached else "miss", "X-Key": res.key}
        return Response(res.png, media_type="image/png", headers=headers)

    return app
