"""One error hierarchy, rendered by one handler as application/problem+json (RFC 9457)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from omniroute.shared.transport.base import BusUnavailable

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    status_code = 500
    title = "Internal Server Error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class BadRequest(AppError):
    status_code = 400
    title = "Bad Request"


class Unauthorized(AppError):
    status_code = 401
    title = "Unauthorized"

    def __init__(self, message: str = "missing or invalid credentials", **extra: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **extra)


class Forbidden(AppError):
    status_code = 403
    title = "Forbidden"


class NotFound(AppError):
    status_code = 404
    title = "Not Found"


class Conflict(AppError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    title = "Payload Too Large"


class UnsupportedMediaType(AppError):
    status_code = 415
    title = "Unsupported Media Type"


class Unprocessable(AppError):
    status_code = 422
    title = "Unprocessable Content"


class ServiceUnavailable(AppError):
    status_code = 503
    title = "Service Unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem(exc.status_code, exc.title, exc.message, headers=exc.headers, **exc.extra)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()[:50]
        ]
        return problem(422, "Unprocessable Content", "the payload is invalid", errors=errors)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem(
            exc.status_code, _title(exc.status_code), str(exc.detail), headers=exc.headers
        )

    async def bus_unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BusUnavailable)
        log.warning("http.bus_unavailable", path=request.url.path)
        return problem(
            503,
            "Service Unavailable",
            "the contact could not be made durable; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled_error", path=request.url.path)
        return problem(500, "Internal Server Error", "unexpected error")

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(BusUnavailable, bus_unavailable)
    app.add_exception_handler(Exception, unexpected)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
