"""Revision 0002_webhooks goes down and up again beside the other heads."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from omniroute.router.migrations import alembic_config, upgrade
from omniroute.shared import db
from omniroute.shared.settings import DatabaseSettings

TABLES = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}


async def tables(settings: DatabaseSettings) -> set[str]:
    engine = db.create_engine(settings)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names


def _downgrade_webhooks(connection: sa.engine.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "0002_webhooks@0001")


class TestMigration:
    async def test_down_and_up_again(self, database_settings: DatabaseSettings) -> None:
        assert await tables(database_settings) >= TABLES
        engine = db.create_engine(database_settings)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_downgrade_webhooks)
        finally:
            await engine.dispose()
        remaining = await tables(database_settings)
        assert not TABLES & remaining
        assert "conversation_events" in remaining
        await upgrade(database_settings)
        assert await tables(database_settings) >= TABLES
