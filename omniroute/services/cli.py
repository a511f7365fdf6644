"""The `omniroute` command: run each service, migrate, manage keys, train the classifier."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
import uvicorn

from omniroute.services.bootstrap import admin_key, load_settings
from omniroute.shared.auth import Role
from omniroute.shared.errors import NotFound
from omniroute.shared.http import prepare_gc_for_serving

app = typer.Typer(help="Omnichannel contact routing.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

Host = Annotated[str, typer.Option(envvar="HOST", help="Address to listen on")]


def _serve(asgi_app: object, host: str, port: int) -> None:
    prepare_gc_for_serving()
    uvicorn.run(asgi_app, host=host, port=port, log_config=None, access_log=False)  # type: ignore[arg-type]


def _migrate() -> None:
    from omniroute.router.migrations import upgrade

    settings = load_settings()
    asyncio.run(upgrade(settings.database))
    typer.echo(f"database at head: {_redacted(settings.database.database_url)}")


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


@app.command()
def migrate() -> None:
    """Apply the database migrations (OMNIROUTE_DATABASE_URL)."""
    _migrate()


@app.command()
def run(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
) -> None:
    """Everything in one process: in-process bus, SQLite by default. Migrates first."""
    from omniroute.services.apps import create_embedded_app

    _migrate()
    settings = load_settings()
    key = admin_key(settings)
    typer.echo(f"Omniroute on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    typer.echo(f"admin API key: {key}")
    _serve(create_embedded_app(settings), host, port)


@app.command()
def gateway(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
    smtp_port: Annotated[
        int | None,
        typer.Option(
            envvar="OMNIROUTE_SMTP_PORT", help="Also accept e-mail over SMTP on this port"
        ),
    ] = None,
) -> None:
    """The ingestion gateway (channel webhooks, the contacts API, optionally SMTP)."""
    from omniroute.services.apps import create_gateway_app

    settings = load_settings()
    _serve(create_gateway_app(settings, smtp_port=smtp_port), host, port)


@app.command()
def router(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8001,
) -> None:
    """The router: consumes classified contacts, makes offers, serves the agent API."""
    from omniroute.services.apps import create_router_app

    settings = load_settings()
    _serve(create_router_app(settings), host, port)


classifier_app = typer.Typer(
    help="The classifier worker (no sub-command), and model training and evaluation."
)
app.add_typer(classifier_app, name="classifier")


@classifier_app.callback(invoke_without_command=True)
def classifier(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Health and metrics port")] = 8101,
) -> None:
    """Run a classifier worker (one consumer group member); health and metrics over HTTP."""
    if ctx.invoked_subcommand is not None:
        return
    from omniroute.services.apps import create_classifier_app

    settings = load_settings()
    _serve(create_classifier_app(settings), host, port)


def _mount_classifier_tools() -> None:
    """Training and evaluation commands live with the classifier; mount them here."""
    try:
        from omniroute.classifier.cli import app as tools
    except ImportError:  # pragma: no cover - the classifier tools are part of the package
        return
    for command in tools.registered_commands:
        classifier_app.registered_commands.append(command)


_mount_classifier_tools()


@keys_app.command("create")
def create_key_command(
    role: Annotated[Role, typer.Option(help="ingest, agent, supervisor or admin")],
    agent_id: Annotated[
        uuid.UUID | None, typer.Option(help="The agent an agent key acts as")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from omniroute.router.agents.service import get_agent
    from omniroute.shared import db
    from omniroute.shared.auth import create_key

    if (role is Role.AGENT) != (agent_id is not None):
        raise typer.BadParameter("--agent-id is required for, and only for, --role agent")
    settings = load_settings()

    async def create() -> str:
        engine = db.create_engine(settings.database)
        try:
            async with db.transaction(db.create_session_factory(engine)) as session:
                if agent_id is not None:
                    await get_agent(session, agent_id)
                _, clear = await create_key(session, role, agent_id=agent_id, name=name)
            return clear
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(create()))
    except NotFound as exc:
        raise typer.BadParameter(f"no agent {agent_id}", param_hint="--agent-id") from exc


@keys_app.command("admin")
def show_admin_key() -> None:
    """Print the admin key this installation uses."""
    typer.echo(admin_key(load_settings()))


webhooks_app = typer.Typer(help="Outbound webhooks.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("new-key")
def new_secrets_key() -> None:
    """Print a new key for OMNIROUTE_SECRETS_KEY (put it first; keep the old ones after it)."""
    from omniroute.router.webhooks.sealing import new_key

    typer.echo(new_key())


@webhooks_app.command("seal-secrets")
def seal_secrets_command() -> None:
    """Seal every webhook signing secret with the newest OMNIROUTE_SECRETS_KEY key (secrets
    stored before a key was set, or sealed with an older key)."""
    from omniroute.router.webhooks.sealing import SecretSealer
    from omniroute.router.webhooks.service import seal_secrets
    from omniroute.shared import db

    settings = load_settings()
    sealer = SecretSealer(settings.router.secrets_key)
    if not sealer.sealing:
        raise typer.BadParameter("set OMNIROUTE_SECRETS_KEY first (`omniroute webhooks new-key`)")

    async def seal() -> int:
        engine = db.create_engine(settings.database)
        try:
            async with db.transaction(db.create_session_factory(engine)) as session:
                return await seal_secrets(session, sealer)
        finally:
            await engine.dispose()

    typer.echo(f"sealed {asyncio.run(seal())} webhook secret(s) with the newest key")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
