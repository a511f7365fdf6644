"""The services as ASGI apps: gateway, router, classifier worker, and all-in-one (embedded).

Each app builds its engine, bus, consumers and model in its lifespan and closes them on
shutdown; nothing connects at import time. The stage code is the same under every wiring.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from omniroute.classifier.consumers import make_classify_handler
from omniroute.classifier.pipeline import Classifier
from omniroute.gateway.endpoints import body_limits, gateway_router
from omniroute.gateway.ingest import ContactPublisher
from omniroute.gateway.routing import serve_directly
from omniroute.gateway.smtp import smtp_listener
from omniroute.router.api import router_api
from omniroute.router.consumers import make_route_handler
from omniroute.router.notifications.timers import install as install_notifications
from omniroute.router.routing.rules import RoutingRules
from omniroute.router.runtime import RouterRuntime
from omniroute.router.webhooks.worker import run_webhooks
from omniroute.services.bootstrap import admin_key
from omniroute.shared import db, topics
from omniroute.shared.auth import KeyStore
from omniroute.shared.http import ReadinessCheck, add_routes, create_app, health_router
from omniroute.shared.settings import Settings
from omniroute.shared.transport import Bus
from omniroute.shared.transport.factory import create_bus

log = structlog.get_logger(__name__)

CLASSIFIER_GROUP = "classifier"
ROUTER_GROUP = "router"


class _Database:
    def __init__(self, settings: Settings) -> None:
        self.engine: AsyncEngine = db.create_engine(settings.database)
        self.sessions: async_sessionmaker[AsyncSession] = db.create_session_factory(self.engine)

    async def ping(self) -> bool:
        return await db.ping(self.engine)


def _database(stack: AsyncExitStack, settings: Settings) -> _Database:
    database = _Database(settings)
    stack.push_async_callback(database.engine.dispose)
    return database


async def _smtp(
    stack: AsyncExitStack, settings: Settings, publisher: ContactPublisher, port: int | None
) -> None:
    """The SMTP listener, when a port is configured; closed with the app."""
    if port is None:
        return
    await stack.enter_async_context(
        smtp_listener(
            publisher,
            host=settings.gateway.smtp_host,
            port=port,
            max_bytes=settings.gateway.max_email_bytes,
            tls_context=_smtp_tls(settings),
            require_starttls=settings.gateway.smtp_require_starttls,
        )
    )


def _smtp_tls(settings: Settings) -> ssl.SSLContext | None:
    """The SMTP listener's server-side TLS context, when a certificate is configured."""
    gateway = settings.gateway
    if gateway.smtp_tls_certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(gateway.smtp_tls_certfile, gateway.smtp_tls_keyfile)
    return context


def _key_store(settings: Settings, database: _Database) -> KeyStore:
    return KeyStore(database.sessions, admin_key(settings), settings.auth.key_cache_seconds)


def _checks(database: _Database | None, bus: Bus | None) -> dict[str, ReadinessCheck]:
    checks: dict[str, ReadinessCheck] = {}
    if database is not None:
        checks["database"] = database.ping
    if bus is not None:
        checks["bus"] = bus.ping
    return checks


async def _router_runtime(settings: Settings, database: _Database, bus: Bus) -> RouterRuntime:
    rules = RoutingRules.load(settings.router.routing_rules_path)
    runtime = RouterRuntime(database.sessions, bus, settings.router, rules)
    install_notifications(runtime)
    runtime.add_background("webhooks", run_webhooks)
    bus.subscribe_batch(topics.CONTACTS_CLASSIFIED, ROUTER_GROUP, make_route_handler(runtime))
    return runtime


def _classifier(settings: Settings, bus: Bus) -> None:
    classifier = Classifier(settings.classifier)
    bus.subscribe_batch(
        topics.CONTACTS_INBOUND, CLASSIFIER_GROUP, make_classify_handler(classifier, bus)
    )


def create_embedded_app(settings: Settings) -> FastAPI:
    """Everything in one process over the in-process bus: what `make run` serves."""
    holder: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            database = _database(stack, settings)
            bus = create_bus(settings.bus)
            _classifier(settings, bus)
            runtime = await _router_runtime(settings, database, bus)
            await bus.start()
            stack.push_async_callback(bus.stop)
            await runtime.start()
            stack.push_async_callback(runtime.stop)
            app.state.settings = settings
            app.state.publisher = ContactPublisher(bus)
            app.state.key_store = _key_store(settings, database)
            app.state.router_runtime = runtime
            await _smtp(stack, settings, app.state.publisher, settings.gateway.smtp_port)
            holder.update(database=database, bus=bus)
            log.info("omniroute.embedded.started", bus=settings.bus.bus)
            yield

    app = create_app(
        "Omniroute",
        lifespan=lifespan,
        max_body_bytes=settings.gateway.max_body_bytes,
        path_limits=body_limits(settings),
    )
    add_routes(app, gateway_router())
    add_routes(app, router_api())
    add_routes(app, health_router(_lazy_checks(holder)))
    serve_directly(app)
    return app


def _lazy_checks(holder: dict[str, object]) -> dict[str, ReadinessCheck]:
    """Readiness checks that look up the parts the lifespan creates."""

    async def database() -> bool:
        part = holder.get("database")
        return isinstance(part, _Database) and await part.ping()

    async def bus() -> bool:
        part = holder.get("bus")
        return part is not None and await part.ping()  # type: ignore[attr-defined]

    return {"database": database, "bus": bus}


def create_gateway_app(settings: Settings, smtp_port: int | None = None) -> FastAPI:
    """The gateway; with an SMTP port (or OMNIROUTE_SMTP_PORT) it also listens for SMTP."""
    holder: dict[str, object] = {}
    smtp_port = smtp_port if smtp_port is not None else settings.gateway.smtp_port

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            database = _database(stack, settings)
            bus = create_bus(settings.bus)
            await bus.start()
            stack.push_async_callback(bus.stop)
            app.state.settings = settings
            app.state.publisher = ContactPublisher(bus)
            app.state.key_store = _key_store(settings, database)
            await _smtp(stack, settings, app.state.publisher, smtp_port)
            holder.update(database=database, bus=bus)
            log.info("omniroute.gateway.started", bus=settings.bus.bus, smtp_port=smtp_port)
            yield

    app = create_app(
        "Omniroute gateway",
        lifespan=lifespan,
        max_body_bytes=settings.gateway.max_body_bytes,
        path_limits=body_limits(settings),
    )
    add_routes(app, gateway_router())
    add_routes(app, health_router(_lazy_checks(holder)))
    serve_directly(app)
    return app


def create_router_app(settings: Settings) -> FastAPI:
    holder: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            database = _database(stack, settings)
            bus = create_bus(settings.bus)
            runtime = await _router_runtime(settings, database, bus)
            await runtime.start()
            stack.push_async_callback(runtime.stop)
            await bus.start()
            stack.push_async_callback(bus.stop)
            app.state.settings = settings
            app.state.key_store = _key_store(settings, database)
            app.state.router_runtime = runtime
            holder.update(database=database, bus=bus)
            log.info("omniroute.router.started", bus=settings.bus.bus)
            yield

    app = create_app("Omniroute router", lifespan=lifespan)
    add_routes(app, router_api())
    add_routes(app, health_router(_lazy_checks(holder)))
    return app


def create_classifier_app(settings: Settings) -> FastAPI:
    """A classifier worker: consumes contacts.inbound; HTTP only for health and metrics."""
    holder: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            bus = create_bus(settings.bus)
            _classifier(settings, bus)
            await bus.start()
            stack.push_async_callback(bus.stop)
            holder.update(bus=bus)
            log.info("omniroute.classifier.started", bus=settings.bus.bus)
            yield

    app = create_app("Omniroute classifier", lifespan=lifespan)
    checks = _lazy_checks(holder)
    add_routes(app, health_router({"bus": checks["bus"]}))
    return app
