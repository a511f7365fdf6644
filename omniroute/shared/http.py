"""Pieces every HTTP service shares: app factory, body limit, health and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omniroute.shared import metrics
from omniroute.shared.errors import PROBLEM_JSON, install_error_handlers

# How often the event loop's lag is sampled: a timer this far apart costs nothing measurable.
LOOP_LAG_INTERVAL_SECONDS = 0.25

ReadinessCheck = Callable[[], Awaitable[bool]]

# A request in flight holds a few hundred container objects while it awaits the broker. At the
# default gen-0 threshold (700) a collection runs every few requests, promotes the objects of
# the requests still in flight, and the older generations then fill with them and are scanned
# again and again: measured at about 150 us of CPU per gateway request. A larger young
# generation lets them die young, at the cost of a few MB at most.
GC_GEN0_THRESHOLD = 10_000


def prepare_gc_for_serving() -> None:
    """Keep what is built before serving (imports, the app) out of the collector's scans, and
    collect young objects less often. Call once the app is built, before serving it."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before reading them whole.

    Pure ASGI (not BaseHTTPMiddleware) so it adds no task per request on the ingest hot path.
    `path_limits` maps path prefixes to their own limit (raw e-mail is legitimately larger than
    any API body); the longest matching prefix wins, every other path gets `max_body_bytes`.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_body_bytes = max_body_bytes
        # Longest prefix first, so "/v1/channels/email" wins over "/v1/channels".
        self.path_limits = sorted((path_limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.path_limits:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.default_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared: int | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _problem(send, 400, "Bad Request", "invalid Content-Length")
                    return
                if declared > limit:
                    await _problem(send, 413, "Payload Too Large", self._detail(limit))
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and not chunked and scope.get("http_version") in ("1.0", "1.1"):
            # An HTTP/1 server hands the app exactly Content-Length bytes (the rest would be
            # the next request), so a body declared within the limit needs no counting.
            await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _problem(send, 413, "Payload Too Large", self._detail(limit))

    def _detail(self, limit: int) -> str:
        return f"the body exceeds the limit of {limit} bytes"


class _BodyTooLarge(Exception):
    pass


async def _problem(send: Send, status: int, title: str, detail: str) -> None:
    import json

    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """Liveness, readiness (every dependency reachable) and Prometheus metrics."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "unavailable", "checks": results}

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve a router's routes from the app's own table, as if they were declared on the app.

    `app.include_router` serves them through a wrapper that, in FastAPI 0.16x, resolves the
    included router's effective routes again on every request: about 65k instructions, 7%
    of a gateway `POST /v1/contacts` (callgrind). Our routers put everything on their routes,
    so they need no wrapper; a router with a prefix, router-level dependencies or lifespan
    handlers must be included instead, and is refused here rather than served without them.
    """
    if router.prefix or router.dependencies or router.on_startup or router.on_shutdown:
        raise ValueError("a router with a prefix, dependencies or lifespan must be included")
    app.router.routes.extend(router.routes)


async def watch_loop_lag(interval: float = LOOP_LAG_INTERVAL_SECONDS) -> None:
    """Observe how late each timer fires (omniroute_event_loop_lag_seconds): when a service's
    loop is saturated (the router at its limit, a handler blocking), the lag shows it before
    latencies do, and it says which process to scale."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - started - interval))


def _watching_the_loop(lifespan: Any) -> Callable[[FastAPI], Any]:
    """The app's lifespan, with the loop-lag watcher running beside it."""

    @contextlib.asynccontextmanager
    async def watched(app: FastAPI) -> AsyncIterator[Any]:
        watcher = asyncio.create_task(watch_loop_lag(), name="loop-lag")
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    return watched


def create_app(
    title: str,
    *,
    lifespan: Any = None,
    max_body_bytes: int | None = None,
    path_limits: Mapping[str, int] | None = None,
) -> FastAPI:
    from omniroute import __version__

    # FastAPI's own OpenTelemetry hooks are off: our services export Prometheus metrics, and
    # the hooks' check for configured OpenTelemetry providers, made on every request even
    # when none is, reads the environment each time.
    app = FastAPI(
        title=title,
        version=__version__,
        lifespan=_watching_the_loop(lifespan),
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    if max_body_bytes is not None:
        app.add_middleware(
            BodyLimitMiddleware, max_body_bytes=max_body_bytes, path_limits=path_limits
        )
    return app
