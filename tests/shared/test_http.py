"""add_routes: a router's routes served from the app's own table."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends

from omniroute.shared.http import add_routes, create_app


def _router(**options: object) -> APIRouter:
    router = APIRouter(tags=["things"], **options)  # type: ignore[arg-type]

    @router.get("/v1/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    return router


class TestAddRoutes:
    async def test_the_routes_are_served_and_documented_as_if_declared_on_the_app(self) -> None:
        app = create_app("test")
        add_routes(app, _router())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.get("/v1/things/lamp")
            schema = (await client.get("/openapi.json")).json()
        assert answer.json() == {"name": "lamp"}
        assert schema["paths"]["/v1/things/{name}"]["get"]["tags"] == ["things"]

    @pytest.mark.parametrize(
        "options",
        [{"prefix": "/extra"}, {"dependencies": [Depends(lambda: None)]}],
        ids=["prefix", "dependencies"],
    )
    def test_a_router_that_needs_its_include_is_refused(self, options: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="must be included"):
            add_routes(create_app("test"), _router(**options))
