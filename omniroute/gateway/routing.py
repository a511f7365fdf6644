"""The route class of the ingestion endpoints: documented by FastAPI, served directly.

Every gateway endpoint takes the Request alone, reads the raw body itself (signatures are
computed over the exact bytes) and authenticates itself, so FastAPI's per-request machinery
(dependency resolution, endpoint context, body sniffing, response serialisation) does nothing
for it, yet it cost the ingest hot path more CPU than parsing and publishing the contact
(issue 2's profile). These routes keep their OpenAPI description and exception handlers, and
call the endpoint directly; `serve_directly` goes further and answers them before Starlette's
routing, from a dictionary of their paths.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.middleware import Middleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]
ExceptionHandler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


class RequestOnlyRoute(APIRoute):
    """An APIRoute whose endpoint is `async def endpoint(request: Request) -> Response`.

    Nothing would run a dependency or fill a parameter, so a route that declares one is
    refused when it is added, and one included with router dependencies when FastAPI first
    routes to it, instead of being served without them (an authentication dependency silently
    skipped would be a hole).
    """

    def get_route_handler(self) -> Endpoint:
        declared = _declared_beyond_request(_effective_dependant(self))
        if declared:
            raise TypeError(
                f"{self.path}: a RequestOnlyRoute calls its endpoint with the Request alone "
                f"and runs no dependency, but it has {', '.join(declared)}"
            )
        endpoint: Endpoint = self.endpoint
        return endpoint


def serve_directly(app: FastAPI) -> None:
    """Answer the app's RequestOnlyRoutes before Starlette's exception middleware and router.

    Starlette's path to an endpoint (the exception middleware, FastAPI's exit stacks, the
    router trying each route's pattern, two exception wrappers) cost a gateway
    `POST /v1/contacts` about 210k instructions, a quarter of the request (callgrind, in-process
    ASGI). `DirectRoutes` finds these routes by (method, path) in a dictionary and calls
    them with the same Request and the same exception handlers; it sits inside the app's own
    middleware (body limits included), and every other request goes on to the router as
    before. Call it once the app's routes are added, before it serves.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("serve_directly() must be called before the app serves")
    # Appended, the middleware is the innermost of the app's own: inside the body limit.
    app.user_middleware.append(Middleware(DirectRoutes, fastapi_app=app))


class DirectRoutes:
    """Pure ASGI: serves the RequestOnlyRoutes of `fastapi_app`, hands everything else on."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        routes = fastapi_app.router.routes
        for index, route in enumerate(routes):
            # Only fixed paths: a path parameter needs the router's matching.
            if not isinstance(route, RequestOnlyRoute) or "{" in route.path:
                continue
            handler = route.get_route_handler()
            for method in route.methods or ():
                probe = {"type": "http", "method": method, "path": route.path, "root_path": ""}
                # The router tries routes in order: one before this that takes the request
                # (or answers 405 for its path) keeps it.
                if not any(
                    earlier.matches(probe)[0] is not Match.NONE for earlier in routes[:index]
                ):
                    self.endpoints.setdefault((method, route.path), handler)
        self.handlers = _exception_handlers(fastapi_app.exception_handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.endpoints.get((scope["method"], _route_path(scope)))
            if scope["type"] == "http"
            else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            # As Starlette's wrapper does: the handler of the nearest class; anything without
            # one goes on up to the server-error middleware (a logged 500).
            handler = next(
                (self.handlers[cls] for cls in type(exc).__mro__ if cls in self.handlers), None
            )
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _exception_handlers(handlers: Mapping[Any, Callable[..., Any]]) -> dict[type, ExceptionHandler]:
    """The app's handlers by exception class, without the catch-all: Starlette gives that one
    to its server-error middleware, outside this one, and so do we."""
    return {
        key: handler
        for key, handler in handlers.items()
        if isinstance(key, type) and key is not Exception
    }


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _effective_dependant(route: APIRoute) -> Dependant:
    """The dependant FastAPI would resolve: an included route's carries its router's
    dependencies, which FastAPI passes to get_route_handler through a context variable."""
    context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        dependant = getattr(context, "dependant", None)
        if isinstance(dependant, Dependant):
            return dependant
    return route.dependant


def _declared_beyond_request(dependant: Dependant) -> list[str]:
    declared = [f"dependency {dep.call!r}" for dep in dependant.dependencies]
    for kind in ("path", "query", "header", "cookie", "body"):
        params = getattr(dependant, f"{kind}_params")
        declared += [f"{kind} parameter {param.name!r}" for param in params]
    for kind in (
        "websocket",
        "http_connection",
        "response",
        "background_tasks",
        "security_scopes",
    ):
        if getattr(dependant, f"{kind}_param_name") is not None:
            declared.append(f"{kind} parameter")
    if dependant.request_param_name is None:
        declared.append("an endpoint without a Request parameter")
    return declared
