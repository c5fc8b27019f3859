"""The FastAPI application: routers, the error renderer hooked in, the request-context layer.

``create_app()`` is the one factory: uvicorn (``make dev``), the Lambda handler and the tests
all build the app through it. It does no I/O; the runtime builds its parts on first use.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagegw import __version__
from imagegw.api.middleware import RequestContextMiddleware
from imagegw.api.routes import edits, health, images, jobs, models, realtime, uploads, usage
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound, render
from imagegw.logs import configure_logging
from imagegw.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def error_response(error: GatewayError) -> Response:
    return Response(
        content=render(error),
        status_code=error.status,
        media_type="application/json",
        headers=error.response_headers(),
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status >= 500:
        # The cause (upstream status, exception class) helps operators; the caller got the
        # sanitized message. Never the request body or credentials.
        cause = exc.__cause__
        logger.warning(
            "request failed: %s (%s)",
            exc.code,
            type(cause).__name__ if cause else "no cause",
            extra={"request_id": request.state.request_id, "status": exc.status},
        )
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error: GatewayError = NotFound(
            f"Unknown URL: {request.method} {request.url.path}.", code="unknown_url"
        )
    elif exc.status_code == 405:
        error = MethodNotAllowed(
            f"The method {request.method} is not allowed for {request.url.path}."
        )
    else:
        error = InvalidRequest(str(exc.detail))
    return error_response(error)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problem = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in problem.get("loc", ())[1:]]
    return error_response(
        InvalidRequest(
            f"Invalid request: {problem.get('msg', 'invalid input')}.",
            param=".".join(location) or None,
        )
    )


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings or get_settings())
    configure_logging(runtime.settings.log_level)
    app = FastAPI(
        title="imagegw",
        version=__version__,
        summary="OpenAI-compatible image generation gateway",
        docs_url="/docs",
        openapi_url="/openapi.json",
        # The gateway reports through its own telemetry (observability.py). FastAPI's native
        # OpenTelemetry support would look up three global providers on every request (about
        # 2% of the CPU of a small request) to find out that none is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime

    def openapi() -> dict[str, Any]:
        # The generation route documents its request body only when the document is first
        # built: building the app does not import the request model.
        images.document_request_body()
        return FastAPI.openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(images.router)
    app.include_router(edits.router)
    app.include_router(uploads.router)
    app.include_router(jobs.router)
    app.include_router(realtime.router)
    app.include_router(usage.router)
    if runtime.settings.playground:
        from imagegw.api.routes import playground

        app.include_router(playground.router)
    origins = [origin.strip() for origin in runtime.settings.cors_origins.split(",")]
    if any(origins):
        from fastapi.middleware.cors import CORSMiddleware  # only deployments that use it

        # Browsers only: server-side OpenAI clients need no CORS. Keys travel in the
        # Authorization header, never cookies, so credentials mode stays off.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[origin for origin in origins if origin],
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "idempotency-key", "prefer"],
            expose_headers=["x-request-id", *EXPOSED_HEADERS],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    return app


# The gateway's own response headers a browser client may read.
EXPOSED_HEADERS = (
    "x-imagegw-model",
    "x-imagegw-delivery",
    "x-imagegw-ignored-params",
    "x-imagegw-images-filtered",
    "x-imagegw-images-failed",
    "x-imagegw-redirected-from",
    "x-imagegw-cost-usd",
    "x-imagegw-budget-renews-at",
    "x-should-retry",
    "retry-after",
    "location",
)
