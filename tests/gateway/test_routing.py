"""RequestOnlyRoute: served without FastAPI's dependency resolution, so it must refuse any."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from omniroute.gateway.routing import RequestOnlyRoute


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
