"""The route class of the ingestion endpoints: documented by FastAPI, served like Starlette.

Every gateway endpoint takes the Request alone, reads the raw body itself (signatures are
computed over the exact bytes) and authenticates itself, so FastAPI's per-request machinery
(dependency resolution, endpoint context, body sniffing, response serialisation) does nothing
for it, yet it cost the ingest hot path more CPU than parsing and publishing the contact
(issue 2's profile). These routes keep their OpenAPI description and exception handlers, and
call the endpoint directly.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


class RequestOnlyRoute(APIRoute):
    """An APIRoute whose endpoint is `async def endpoint(request: Request) -> Response`.

    Nothing would run a dependency or fill a parameter, so a route that declares one is
    refused when it is added, and one included with router dependencies when FastAPI first
    routes to it, instead of being served without them (an authentication dependency silently
    skipped would be a hole).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = _declared_beyond_request(_effective_dependant(self))
        if declared:
            raise TypeError(
                f"{self.path}: a RequestOnlyRoute calls its endpoint with the Request alone "
                f"and runs no dependency, but it has {', '.join(declared)}"
            )
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


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
