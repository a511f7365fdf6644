"""The embedded app (in-process bus, SQLite) served through httpx, with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from omniroute.services.apps import create_embedded_app
from omniroute.shared.settings import DatabaseSettings, Settings

ADMIN_KEY = "omr_embedded-test-admin-key"
META_SECRET = "meta-test-app-secret"
META_VERIFY = "meta-test-verify-token"
ALL_SKILLS = ("general", "billing", "technical", "supervisor", "vip", "triage")


@dataclass
class Embedded:
    client: httpx.AsyncClient
    admin: dict[str, str]

    async def create_agent(self, name: str, skills: dict[str, int], **fields: Any) -> str:
        body = {"name": name, "status": "available", "skills": skills, **fields}
        response = await self.client.post("/v1/agents", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        agent_id: str = response.json()["id"]
        return agent_id

    async def key(self, role: str, agent_id: str | None = None) -> dict[str, str]:
        response = await self.client.post(
            "/v1/keys", json={"role": role, "agent_id": agent_id}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    async def offers(self, agent_id: str, headers: dict[str, str], wait: float = 10) -> list[Any]:
        response = await self.client.get(
            f"/v1/agents/{agent_id}/offers", params={"wait": wait}, headers=headers
        )
        assert response.status_code == 200, response.text
        offers: list[Any] = response.json()["offers"]
        return offers


@pytest.fixture
def offer_timeout() -> float:
    return 30.0


@pytest.fixture
async def embedded(
    sqlite_settings: DatabaseSettings,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    offer_timeout: float,
) -> AsyncIterator[Embedded]:
    for name, value in {
        "OMNIROUTE_DATABASE_URL": sqlite_settings.database_url,
        "OMNIROUTE_BUS": "inprocess://",
        "OMNIROUTE_ADMIN_KEY": ADMIN_KEY,
        "OMNIROUTE_META_APP_SECRET": META_SECRET,
        "OMNIROUTE_META_VERIFY_TOKEN": META_VERIFY,
        "OMNIROUTE_OFFER_TIMEOUT_SECONDS": str(offer_timeout),
        "OMNIROUTE_DISPATCH_INTERVAL_SECONDS": "0.2",
        "OMNIROUTE_DATA_DIR": str(tmp_path / "var"),
    }.items():
        monkeypatch.setenv(name, value)
    app = create_embedded_app(Settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://omniroute.test", timeout=30
        ) as client:
            yield Embedded(client, {"Authorization": f"Bearer {ADMIN_KEY}"})
