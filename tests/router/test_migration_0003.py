"""Migration 0003 on a database with data: references and notice state are backfilled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from omniroute.router.migrations import alembic_config, upgrade
from omniroute.shared import db
from omniroute.shared.db import UTCDateTime
from omniroute.shared.reference import reference_for
from omniroute.shared.settings import DatabaseSettings
from tests.fixtures.database import PG_BASE, _pg_execute


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DatabaseSettings]:
    if request.param == "sqlite":
        yield DatabaseSettings(database_url=f"sqlite:///{tmp_path / 'old.db'}")
        return
    name = f"omniroute_m_{uuid.uuid4().hex[:10]}"
    await _pg_execute(f'CREATE DATABASE "{name}"')
    yield DatabaseSettings(database_url=f"{PG_BASE}/{name}")
    await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_existing_rows_get_references_and_no_burst_of_old_notices(
    empty_database: DatabaseSettings,
) -> None:
    await upgrade(empty_database, "0001")
    conversation_id, agent_id = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    # The tables as revision 0001 made them (only the columns these rows need).
    agents = sa.table(
        "agents",
        *(sa.column(n, sa.Uuid()) for n in ("id",)),
        *(sa.column(n, sa.String()) for n in ("name", "status")),
        *(sa.column(n, sa.JSON()) for n in ("skills", "capacity")),
        *(sa.column(n, UTCDateTime()) for n in ("idle_since", "created_at", "updated_at")),
        sa.column("version", sa.Integer()),
    )
    conversations = sa.table(
        "conversations",
        sa.column("id", sa.Uuid()),
        *(sa.column(n, sa.String()) for n in ("channel", "conversation_key", "status")),
        sa.column("visibility", sa.String()),
        *(sa.column(n, sa.Integer()) for n in ("priority_score", "message_count", "version")),
        sa.column("required_skills", sa.JSON()),
        *(sa.column(n, UTCDateTime()) for n in ("first_received_at", "created_at", "updated_at")),
    )
    assignments = sa.table(
        "assignments",
        *(sa.column(n, sa.Uuid()) for n in ("id", "conversation_id", "agent_id")),
        sa.column("channel", sa.String()),
        sa.column("started_at", UTCDateTime()),
    )
    engine = db.create_engine(empty_database)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                agents.insert().values(
                    id=agent_id,
                    name="Marta",
                    status="available",
                    skills={},
                    capacity={},
                    idle_since=now,
                    created_at=now,
                    updated_at=now,
                    version=0,
                )
            )
            await connection.execute(
                conversations.insert().values(
                    id=conversation_id,
                    channel="email",
                    conversation_key="k",
                    status="assigned",
                    visibility="private",
                    priority_score=0,
                    message_count=1,
                    version=0,
                    required_skills=[],
                    first_received_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            await connection.execute(
                assignments.insert().values(
                    id=uuid.uuid4(),
                    conversation_id=conversation_id,
                    agent_id=agent_id,
                    channel="email",
                    started_at=now,
                )
            )
    finally:
        await engine.dispose()
    await upgrade(empty_database)
    engine = db.create_engine(empty_database)
    try:
        async with engine.connect() as connection:
            reference, pending = (
                await connection.execute(
                    text("SELECT reference, acknowledge_pending FROM conversations")
                )
            ).one()
            notified = await connection.scalar(text("SELECT notified_at FROM assignments"))
    finally:
        await engine.dispose()
    assert reference == reference_for(conversation_id)
    assert not pending
    assert notified is not None


async def test_it_downgrades_and_upgrades_again(empty_database: DatabaseSettings) -> None:
    await upgrade(empty_database)
    engine = db.create_engine(empty_database)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade_ours)
    finally:
        await engine.dispose()
    await upgrade(empty_database)
    engine = db.create_engine(empty_database)
    try:
        async with engine.connect() as connection:
            heads = set((await connection.execute(text("SELECT * FROM alembic_version"))).scalars())
    finally:
        await engine.dispose()
    assert heads == set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _downgrade_ours(connection: sa.engine.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "0003_customers_notifications-1")
