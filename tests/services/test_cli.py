"""The `omniroute` command as an operator uses it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omniroute.services.cli import app
from omniroute.shared import db
from omniroute.shared.auth import KeyStore, Role
from omniroute.shared.settings import DatabaseSettings

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatabaseSettings:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("OMNIROUTE_DATABASE_URL", url)
    monkeypatch.setenv("OMNIROUTE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("OMNIROUTE_ADMIN_KEY", raising=False)
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    return DatabaseSettings(database_url=url)


def verify(settings: DatabaseSettings, key: str) -> Role | None:
    async def check() -> Role | None:
        engine = db.create_engine(settings)
        try:
            principal = await KeyStore(db.create_session_factory(engine), None).verify(key)
        finally:
            await engine.dispose()
        return principal.role if principal else None

    return asyncio.run(check())


class TestKeys:
    def test_a_created_key_authenticates_with_its_role(self, database: DatabaseSettings) -> None:
        result = runner.invoke(app, ["keys", "create", "--role", "supervisor"])
        assert result.exit_code == 0, result.output
        key = result.output.strip()
        assert key.startswith("omr_")
        assert verify(database, key) is Role.SUPERVISOR
        assert verify(database, key + "x") is None

    def test_an_agent_key_needs_an_existing_agent(self, database: DatabaseSettings) -> None:
        unbound = runner.invoke(app, ["keys", "create", "--role", "agent"])
        assert unbound.exit_code != 0
        unknown = runner.invoke(
            app, ["keys", "create", "--role", "agent", "--agent-id", str(uuid.uuid4())]
        )
        assert unknown.exit_code != 0
        assert "no agent" in unknown.output

    def test_the_admin_key_is_generated_once_and_kept(
        self, database: DatabaseSettings, tmp_path: Path
    ) -> None:
        first = runner.invoke(app, ["keys", "admin"]).output.strip()
        second = runner.invoke(app, ["keys", "admin"]).output.strip()
        assert first == second
        assert first.startswith("omr_")
        assert (tmp_path / "var" / "admin.key").read_text().strip() == first


class TestProductionSecrets:
    @pytest.mark.parametrize("name", ["OMNIROUTE_TWILIO_AUTH_TOKEN", "OMNIROUTE_X_CONSUMER_SECRET"])
    def test_placeholder_provider_secrets_are_refused(
        self, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from omniroute.shared.settings import Settings

        monkeypatch.setenv("OMNIROUTE_ENV", "production")
        monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", "omr_a-real-looking-key")
        monkeypatch.setenv(name, "changeme")
        with pytest.raises(ValueError, match=name):
            Settings().validate_for_production()

    @pytest.mark.parametrize("value", ["", "   ", "changeme"])
    def test_empty_or_placeholder_admin_keys_are_refused(
        self, value: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from omniroute.shared.settings import Settings

        monkeypatch.setenv("OMNIROUTE_ENV", "production")
        monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", value)
        with pytest.raises(ValueError, match="OMNIROUTE_ADMIN_KEY"):
            Settings().validate_for_production()

    def test_serving_the_api_in_production_needs_an_admin_key(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from omniroute.services.bootstrap import admin_key
        from omniroute.shared.settings import Settings

        monkeypatch.setenv("OMNIROUTE_ENV", "production")
        monkeypatch.delenv("OMNIROUTE_ADMIN_KEY", raising=False)
        Settings().validate_for_production()  # a classifier worker may start without it
        with pytest.raises(ValueError, match="must be set in production"):
            admin_key(Settings())
