"""The webhook endpoints API: registration, validation, roles, reading, changing, deleting."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from omniroute.router.runtime import RouterRuntime
from omniroute.shared.auth import Role, create_key
from tests.router.webhooks.conftest import ADMIN, register

URL = "https://hooks.example.com/omniroute"


async def key_for(runtime: RouterRuntime, role: Role) -> dict[str, str]:
    async with runtime.uow() as uow:
        agent_id = uuid.uuid4() if role is Role.AGENT else None
        _, clear = await create_key(uow.session, role, agent_id=agent_id)
    return {"Authorization": f"Bearer {clear}"}


class TestRegistration:
    async def test_registering_shows_the_secret_once(self, api: httpx.AsyncClient) -> None:
        created = await register(api, URL, ["contact.received"], description="CRM")
        assert created["secret"].startswith("whsec_")
        assert created["url"] == URL
        assert created["event_types"] == ["contact.received"]
        assert created["enabled"] is True
        assert created["description"] == "CRM"

        read = await api.get(f"/v1/webhooks/{created['id']}", headers=ADMIN)
        assert read.status_code == 200
        assert "secret" not in read.json()
        listed = await api.get("/v1/webhooks", headers=ADMIN)
        assert [e["id"] for e in listed.json()] == [created["id"]]
        assert "secret" not in listed.json()[0]

    async def test_without_a_filter_every_type_is_sent(self, api: httpx.AsyncClient) -> None:
        created = await register(api, URL)
        assert created["event_types"] is None

    @pytest.mark.parametrize(
        ("body", "where"),
        [
            ({"url": "ftp://hooks.example.com/x"}, "url"),
            ({"url": "file:///etc/passwd"}, "url"),
            ({"url": "hooks.example.com/x"}, "url"),
            ({"url": "https://user:pass@hooks.example.com/x"}, "url"),
            ({"url": "https://token@hooks.example.com/x"}, "url"),
            ({"url": "https://hooks.example.com/" + "x" * 2100}, "url"),
            ({"url": URL, "event_types": ["contact.teleported"]}, "event_types"),
            ({"url": URL, "event_types": []}, "event_types"),
            ({"url": URL, "description": "x" * 501}, "description"),
            ({"url": URL, "secret": "whsec_mine"}, "secret"),
            ({}, "url"),
        ],
    )
    async def test_invalid_input_is_a_clear_422(
        self, api: httpx.AsyncClient, body: dict[str, Any], where: str
    ) -> None:
        response = await api.post("/v1/webhooks", json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert where in {str(part) for error in response.json()["errors"] for part in error["loc"]}

    async def test_credentials_in_the_url_are_explained(self, api: httpx.AsyncClient) -> None:
        response = await api.post(
            "/v1/webhooks", json={"url": "https://u:p@hooks.example.com/"}, headers=ADMIN
        )
        assert "credentials" in response.json()["errors"][0]["msg"]


class TestRoles:
    async def test_a_supervisor_reads_but_does_not_change(
        self, api: httpx.AsyncClient, runtime: RouterRuntime
    ) -> None:
        supervisor = await key_for(runtime, Role.SUPERVISOR)
        created = await register(api, URL)
        assert (await api.get("/v1/webhooks", headers=supervisor)).status_code == 200
        read = await api.get(f"/v1/webhooks/{created['id']}/deliveries", headers=supervisor)
        assert read.status_code == 200
        refused = await api.post("/v1/webhooks", json={"url": URL}, headers=supervisor)
        assert refused.status_code == 403
        patch = await api.patch(
            f"/v1/webhooks/{created['id']}", json={"enabled": False}, headers=supervisor
        )
        assert patch.status_code == 403
        delete = await api.delete(f"/v1/webhooks/{created['id']}", headers=supervisor)
        assert delete.status_code == 403

    @pytest.mark.parametrize("role", [Role.AGENT, Role.INGEST])
    async def test_agents_and_ingest_keys_see_nothing(
        self, api: httpx.AsyncClient, runtime: RouterRuntime, role: Role
    ) -> None:
        headers = await key_for(runtime, role)
        assert (await api.get("/v1/webhooks", headers=headers)).status_code == 403

    async def test_no_key_is_401(self, api: httpx.AsyncClient) -> None:
        assert (await api.get("/v1/webhooks")).status_code == 401


class TestChanges:
    async def test_patch_disables_and_changes_the_filter(self, api: httpx.AsyncClient) -> None:
        created = await register(api, URL)
        response = await api.patch(
            f"/v1/webhooks/{created['id']}",
            json={"enabled": False, "event_types": ["sla.breach", "sla.warning"]},
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        assert response.json()["enabled"] is False
        assert response.json()["event_types"] == ["sla.breach", "sla.warning"]
        back = await api.patch(
            f"/v1/webhooks/{created['id']}",
            json={"enabled": True, "event_types": None},
            headers=ADMIN,
        )
        assert back.json()["enabled"] is True
        assert back.json()["event_types"] is None

    async def test_patch_validates_like_create(self, api: httpx.AsyncClient) -> None:
        created = await register(api, URL)
        response = await api.patch(
            f"/v1/webhooks/{created['id']}", json={"url": "gopher://x.example/"}, headers=ADMIN
        )
        assert response.status_code == 422

    async def test_delete_then_not_found(self, api: httpx.AsyncClient) -> None:
        created = await register(api, URL)
        assert (await api.delete(f"/v1/webhooks/{created['id']}", headers=ADMIN)).status_code == 204
        assert (await api.get(f"/v1/webhooks/{created['id']}", headers=ADMIN)).status_code == 404
        again = await api.delete(f"/v1/webhooks/{created['id']}", headers=ADMIN)
        assert again.status_code == 404

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/deliveries",
            "/v1/webhooks/deliveries/{id}",
        ],
    )
    async def test_unknown_ids_are_404(self, api: httpx.AsyncClient, path: str) -> None:
        response = await api.get(path.format(id=uuid.uuid4()), headers=ADMIN)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_an_unknown_status_filter_is_422(self, api: httpx.AsyncClient) -> None:
        created = await register(api, URL)
        response = await api.get(
            f"/v1/webhooks/{created['id']}/deliveries", params={"status": "lost"}, headers=ADMIN
        )
        assert response.status_code == 422
