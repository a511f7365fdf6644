"""Deliveries reach public addresses only, unless private networks are allowed."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import httpx
import pytest

from omniroute.router.runtime import RouterRuntime
from omniroute.router.webhooks.egress import (
    PublicOnlyBackend,
    PublicOnlyTransport,
    is_public,
    private_host,
)
from tests.router.webhooks.conftest import ADMIN, Receiver

NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud instance metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",
    "224.0.0.1",
    "192.0.2.10",  # documentation
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "ff02::1",
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080/hook", True),
        ("http://[::1]/hook", True),
        ("http://169.254.169.254/latest/meta-data/", True),
        ("https://localhost/hook", True),
        ("https://api.localhost./hook", True),
        ("https://hooks.example.com/omniroute", False),  # a name: judged when delivered
        ("https://8.8.8.8/hook", False),
    ],
)
def test_a_url_naming_a_private_destination_outright(url: str, refused: bool) -> None:
    assert (private_host(url) is not None) is refused


async def test_a_delivery_to_this_machine_is_not_made(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=PublicOnlyTransport()) as client:
        with pytest.raises(httpx.ConnectError, match="not a public address"):
            await client.post(receiver.url, content=b"{}")
        # A name that resolves to this machine is judged by its addresses.
        by_name = receiver.url.replace("127.0.0.1", "localhost")
        with pytest.raises(httpx.ConnectError, match="not a public address"):
            await client.post(by_name, content=b"{}")
    assert receiver.requests == []


class Recording(httpcore.AsyncNetworkBackend):
    """Stands in for the network: records where it was asked to connect."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, **_: Any) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        raise httpcore.ConnectError("recorded")

    async def sleep(self, seconds: float) -> None:
        return None


async def test_a_public_destination_is_connected_to_by_the_address_checked() -> None:
    inner = Recording()
    backend = PublicOnlyBackend(inner)
    with pytest.raises(httpcore.ConnectError, match="recorded"):
        await backend.connect_tcp("93.184.216.34", 443, timeout=5)
    assert inner.connected == [("93.184.216.34", 443)]
    with pytest.raises(httpcore.ConnectError, match="not a public address"):
        await backend.connect_tcp("localhost", 443, timeout=5)
    assert inner.connected == [("93.184.216.34", 443)]


class TestRegistration:
    @pytest.fixture
    def guarded(self, runtime: RouterRuntime) -> RouterRuntime:
        runtime.settings = runtime.settings.model_copy(
            update={"webhook_allow_private_networks": False}
        )
        return runtime

    async def test_a_private_url_is_refused_with_a_clear_422(
        self, guarded: RouterRuntime, api: httpx.AsyncClient
    ) -> None:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/", "https://localhost/h"):
            response = await api.post("/v1/webhooks", json={"url": url}, headers=ADMIN)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in response.json()["detail"]
        created = await api.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/x"}, headers=ADMIN
        )
        assert created.status_code == 201
        moved = await api.patch(
            f"/v1/webhooks/{created.json()['id']}",
            json={"url": "http://10.0.0.7/hook"},
            headers=ADMIN,
        )
        assert moved.status_code == 422

    async def test_allowed_when_private_networks_are(
        self, runtime: RouterRuntime, api: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        response = await api.post("/v1/webhooks", json={"url": receiver.url}, headers=ADMIN)
        assert response.status_code == 201
