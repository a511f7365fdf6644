"""Alembic migrations of the Omniroute database, runnable from code (`omniroute migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from omniroute.shared.db import create_engine
from omniroute.shared.settings import DatabaseSettings

HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade(settings: DatabaseSettings, revision: str = "heads") -> None:
    """Bring the database to `revision`, sharing our async engine's connection with Alembic."""
    if settings.is_sqlite:
        _ensure_sqlite_dir(settings.database_url)
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_upgrade, revision)
    finally:
        await engine.dispose()


def _run_upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
