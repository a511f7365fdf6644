"""Alembic environment: runs on a connection handed over by `upgrade()`, or its own engine."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

import omniroute.router.schema  # noqa: F401  (registers every table on the metadata)
from omniroute.shared.db import Base, UTCDateTime, create_engine
from omniroute.shared.settings import DatabaseSettings

target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes our column types as importable names, not module paths."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from omniroute.shared.db import UTCDateTime")
        return "UTCDateTime()"
    return False


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    settings = DatabaseSettings(database_url=url) if url else DatabaseSettings()
    engine = create_engine(settings)
    async with engine.connect() as connection:
        await connection.run_sync(_configure_and_run)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:
    asyncio.run(_run_with_own_engine())
