"""RequestOnlyRoute: served without FastAPI's dependency resolution, so it must refuse any;
and serve_directly, which answers such routes before Starlette's router."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from omniroute.gateway.routing import RequestOnlyRoute, serve_directly
from omniroute.shared.errors import PROBLEM_JSON, Unauthorized
from omniroute.shared.http import add_routes, create_app, health_router


def _deny() -> None:
    raise AssertionError("never called: the route refuses to be built")


async def endpoint(request: Request) -> Response:
    return Response(request.url.path, status_code=202)


class TestRefusesWhatItWouldNotRun:
    def test_a_route_dependency(self) -> None:
        router = APIRouter(route_class=RequestOnlyRoute)
        with pytest.raises(TypeError, match="dependency"):
            router.add_api_route("/x", endpoint, methods=["POST"], dependencies=[Depends(_deny)])

    async def test_a_router_dependency_given_at_inclusion(self) -> None:
        router = APIRouter(route_class=RequestOnlyRoute)
        router.add_api_route("/x", endpoint, methods=["POST"])
        app = FastAPI()
        app.include_router(router, dependencies=[Depends(_deny)])
        # FastAPI builds an included route's effective form when it first routes a request.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            with pytest.raises(TypeError, match="dependency"):
                await client.post("/x")

    def test_a_parameter_other_than_the_request(self) -> None:
        async def with_query(request: Request, wait: int = 0) -> Response:
            return Response()

        router = APIRouter(route_class=RequestOnlyRoute)
        with pytest.raises(TypeError, match="query parameter 'wait'"):
            router.add_api_route("/x", with_query, methods=["GET"])

    def test_an_endpoint_without_the_request(self) -> None:
        async def no_request() -> Response:
            return Response()

        router = APIRouter(route_class=RequestOnlyRoute)
        with pytest.raises(TypeError, match="without a Request"):
            router.add_api_route("/x", no_request, methods=["GET"])


class TestServes:
    async def test_calls_the_endpoint_and_documents_the_route(self) -> None:
        router = APIRouter(route_class=RequestOnlyRoute)
        router.add_api_route("/x", endpoint, methods=["POST"], summary="An endpoint")
        app = FastAPI()
        app.include_router(router, prefix="/v1")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            response = await client.post("/v1/x")
            schema = (await client.get("/openapi.json")).json()
        assert (response.status_code, response.text) == (202, "/v1/x")
        assert schema["paths"]["/v1/x"]["post"]["summary"] == "An endpoint"


async def fails(request: Request) -> Response:
    raise RuntimeError("a bug")


async def refuses(request: Request) -> Response:
    raise Unauthorized()


async def echo_body(request: Request) -> Response:
    return Response(await request.body(), status_code=202)


class TestServesDirectly:
    """serve_directly answers RequestOnlyRoutes before the router, and nothing else changes."""

    @staticmethod
    def app(*routes: tuple[str, object], max_body_bytes: int = 1024) -> FastAPI:
        router = APIRouter(route_class=RequestOnlyRoute)
        for path, handler in routes:
            router.add_api_route(path, handler, methods=["POST"])  # type: ignore[arg-type]
        app = create_app("test", max_body_bytes=max_body_bytes)
        add_routes(app, router)
        add_routes(app, health_router({}))
        serve_directly(app)
        return app

    @staticmethod
    def client(app: FastAPI) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://test",
        )

    async def test_the_endpoint_answers_with_the_apps_middleware_around_it(self) -> None:
        app = self.app(("/v1/echo", echo_body), max_body_bytes=16)
        async with self.client(app) as client:
            small = await client.post("/v1/echo", content=b"hello")
            large = await client.post("/v1/echo", content=b"x" * 17)
        assert (small.status_code, small.content) == (202, b"hello")
        assert large.status_code == 413
        assert large.headers["content-type"] == PROBLEM_JSON

    async def test_errors_get_the_apps_exception_handlers(self) -> None:
        app = self.app(("/v1/refuses", refuses), ("/v1/fails", fails))
        async with self.client(app) as client:
            refused = await client.post("/v1/refuses")
            failed = await client.post("/v1/fails")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert failed.status_code == 500
        assert failed.headers["content-type"] == PROBLEM_JSON

    async def test_other_methods_and_paths_go_on_to_the_router(self) -> None:
        app = self.app(("/v1/echo", echo_body))
        async with self.client(app) as client:
            wrong_method = await client.get("/v1/echo")
            health = await client.get("/healthz")
            unknown = await client.post("/v1/nothing")
        assert wrong_method.status_code == 405
        assert health.json() == {"status": "ok"}
        assert unknown.status_code == 404

    async def test_a_route_declared_earlier_keeps_its_precedence(self) -> None:
        app = create_app("test", max_body_bytes=1024)

        @app.post("/v1/{anything}", status_code=200)
        async def first(anything: str) -> dict[str, str]:
            return {"first": anything}

        router = APIRouter(route_class=RequestOnlyRoute)
        router.add_api_route("/v1/echo", echo_body, methods=["POST"])
        add_routes(app, router)
        serve_directly(app)
        async with self.client(app) as client:
            response = await client.post("/v1/echo", content=b"hello")
        assert response.json() == {"first": "echo"}

    async def test_refuses_an_app_that_already_serves(self) -> None:
        app = self.app(("/v1/echo", echo_body))
        async with self.client(app) as client:
            await client.get("/healthz")
        with pytest.raises(RuntimeError, match="before the app serves"):
            serve_directly(app)
