"""add_routes: a router's routes served from the app's own table."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import REGISTRY

from omniroute.shared.http import add_routes, create_app, watch_loop_lag


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


def _loop_lag() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("omniroute_event_loop_lag_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("omniroute_event_loop_lag_seconds_sum") or 0.0
    return count, total


class TestLoopLag:
    async def test_a_blocked_loop_shows_as_lag(self) -> None:
        watcher = asyncio.create_task(watch_loop_lag(interval=0.05))
        await asyncio.sleep(0.12)  # two quiet samples
        count, total = _loop_lag()
        time.sleep(0.3)  # noqa: ASYNC251 (on purpose: a handler that blocks the loop)
        await asyncio.sleep(0.12)
        watcher.cancel()
        after_count, after_total = _loop_lag()
        assert after_count > count
        assert after_total - total >= 0.2

    async def test_every_app_watches_its_loop_while_its_own_lifespan_runs(self) -> None:
        ran: list[str] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
            ran.append("start")
            yield {"state": "kept"}
            ran.append("stop")

        app = create_app("test", lifespan=lifespan)
        async with app.router.lifespan_context(app) as state:
            assert state == {"state": "kept"}
            names = {task.get_name() for task in asyncio.all_tasks()}
            assert "loop-lag" in names
        assert ran == ["start", "stop"]
        assert "loop-lag" not in {task.get_name() for task in asyncio.all_tasks()}
