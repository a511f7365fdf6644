"""The distributed pipeline as separate processes over a real Tansu broker and PostgreSQL.

1,000 contacts are posted to the gateway while one classifier worker is killed (SIGKILL) and the
broker is paused (SIGSTOP/SIGCONT). Whatever the gateway refuses (503) is retried, as a channel
integration would. Every contact must end as exactly one row in the database and be offered
exactly once: none lost, none duplicated.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from omniroute.services.cluster import ProcessGroup, start_stages, wait_ready
from tests.fixtures.broker import TansuBroker, start_tansu
from tests.fixtures.database import PG_BASE, _pg_execute

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

CONTACTS = 1000
CONCURRENCY = 16
ADMIN_KEY = "omr_distributed-test-admin-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of its own: this test uses the real topic names."""
    broker = start_tansu(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def pg_database(postgres_template: str) -> Iterator[str]:
    name = f"omniroute_e2e_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    yield f"{PG_BASE}/{name}"
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Cluster:
    def __init__(self, group: ProcessGroup, gateway: str, router: str, database: str) -> None:
        self.group = group
        self.gateway = gateway
        self.router = router
        self.database = database


@pytest.fixture
async def cluster(broker: TansuBroker, pg_database: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    gateway_port, router_port = _free_port(), _free_port()
    env = {
        "OMNIROUTE_BUS": broker.url,
        "OMNIROUTE_DATABASE_URL": pg_database,
        "OMNIROUTE_ADMIN_KEY": ADMIN_KEY,
        "OMNIROUTE_GATEWAY_PORT": str(gateway_port),
        "OMNIROUTE_ROUTER_PORT": str(router_port),
        "OMNIROUTE_CLASSIFIER_PORTS": f"{_free_port()},{_free_port()}",
        "OMNIROUTE_OFFER_TIMEOUT_SECONDS": "3600",
        "OMNIROUTE_BUS_SEND_TIMEOUT_SECONDS": "3",
        "OMNIROUTE_DATA_DIR": str(tmp_path / "var"),
        "OMNIROUTE_LOG_LEVEL": "WARNING",
    }
    group = ProcessGroup(tmp_path / "logs")
    urls = start_stages(group, env, classifiers=2)
    try:
        await asyncio.gather(*(wait_ready(url, within=90) for url in urls.values()))
        yield Cluster(
            group,
            f"http://127.0.0.1:{gateway_port}",
            f"http://127.0.0.1:{router_port}",
            pg_database,
        )
    finally:
        group.stop_all()
        for log in sorted((tmp_path / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            sys.stderr.write(f"--- {log.name}\n" + "\n".join(tail) + "\n")


async def _post_until_accepted(
    client: httpx.AsyncClient, payload: dict[str, object], refusals: list[int]
) -> dict[str, str]:
    """Post like a channel integration: a 503 (or a dropped connection) is retried."""
    deadline = time.monotonic() + 180
    while True:
        try:
            response = await client.post("/v1/contacts", json=payload)
        except httpx.TransportError:
            refusals.append(0)
        else:
            if response.status_code == 202:
                body: dict[str, str] = response.json()
                return body
            assert response.status_code == 503, response.text
            assert "retry-after" in response.headers
            refusals.append(503)
        if time.monotonic() > deadline:
            raise AssertionError(f"contact {payload['external_id']} was never accepted")
        await asyncio.sleep(0.5)


async def test_no_contact_is_lost_or_duplicated(cluster: Cluster, broker: TansuBroker) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=cluster.router, headers=admin, timeout=30) as router:
        agent = (
            await router.post(
                "/v1/agents",
                json={
                    "name": "Everyone",
                    "status": "available",
                    "skills": {
                        s: 3
                        for s in ("general", "billing", "technical", "supervisor", "vip", "triage")
                    },
                    "capacity": {"default": CONTACTS * 2},
                },
            )
        ).json()
        ingest_key = (await router.post("/v1/keys", json={"role": "ingest"})).json()["key"]

    refusals: list[int] = []
    receipts: dict[str, dict[str, str]] = {}
    semaphore = asyncio.Semaphore(CONCURRENCY)
    posted = 0
    halfway, three_quarters = asyncio.Event(), asyncio.Event()

    async with httpx.AsyncClient(
        base_url=cluster.gateway,
        headers={"Authorization": f"Bearer {ingest_key}"},
        timeout=30,
    ) as gateway:

        async def post(index: int) -> None:
            nonlocal posted
            payload = {
                "channel": "chat",
                "external_id": f"msg-{index}",
                "conversation_key": f"session-{index}",
                "customer": {"email": f"customer{index}@example.com", "name": f"C {index}"},
                "text": f"Hola, necesito ayuda con mi pedido número {index}",
            }
            async with semaphore:
                receipts[payload["external_id"]] = await _post_until_accepted(
                    gateway, payload, refusals
                )
                posted += 1
                if posted >= CONTACTS // 2:
                    halfway.set()
                if posted >= (CONTACTS * 3) // 4:
                    three_quarters.set()

        async def chaos() -> None:
            await halfway.wait()
            cluster.group.kill("classifier-1")
            await three_quarters.wait()
            async with broker.paused(4):
                pass

        await asyncio.gather(chaos(), *(post(i) for i in range(CONTACTS)))

    assert len(receipts) == CONTACTS
    assert len({r["contact_id"] for r in receipts.values()}) == CONTACTS

    connection = await asyncpg.connect(cluster.database)
    try:
        deadline = time.monotonic() + 240
        while True:
            contacts = await connection.fetchval("SELECT count(*) FROM contacts")
            offers = await connection.fetchval("SELECT count(*) FROM offers")
            if (contacts, offers) == (CONTACTS, CONTACTS) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        stored = {str(row["id"]) for row in await connection.fetch("SELECT id FROM contacts")}
        per_conversation = await connection.fetch(
            "SELECT conversation_id, count(*) AS n FROM offers GROUP BY conversation_id"
        )
        agents = {str(r["agent_id"]) for r in await connection.fetch("SELECT agent_id FROM offers")}
    finally:
        await connection.close()

    assert stored == {r["contact_id"] for r in receipts.values()}, "lost or unknown contacts"
    assert len(per_conversation) == CONTACTS
    assert all(row["n"] == 1 for row in per_conversation), "a conversation was offered twice"
    assert agents == {agent["id"]}
    # The outage really happened: some posts were refused and retried.
    assert refusals, "the broker pause should have refused at least one post"
