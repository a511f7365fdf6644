"""Signing secrets sealed at rest with OMNIROUTE_SECRETS_KEY (Fernet), rotation, and legacy."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from standardwebhooks import Webhook
from typer.testing import CliRunner

from omniroute.router.runtime import RouterRuntime
from omniroute.router.webhooks.models import WebhookDelivery, WebhookEndpoint
from omniroute.router.webhooks.sealing import (
    SEALED_PREFIX,
    SealedSecretUnavailable,
    SecretSealer,
    new_key,
)
from omniroute.router.webhooks.service import seal_secrets
from omniroute.router.webhooks.worker import WebhookWorker
from omniroute.shared.settings import RouterSettings
from tests.router.webhooks.conftest import Receiver, drain, new_conversation, register

OLD, NEW = new_key(), new_key()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def sealer(*keys: str) -> SecretSealer:
    return SecretSealer(SecretStr(",".join(keys)) if keys else None)


class TestSealer:
    def test_sealed_with_a_key_opened_with_it_and_never_readable_as_is(self) -> None:
        stored = sealer(NEW).seal(SECRET)
        assert stored.startswith(SEALED_PREFIX)
        assert SECRET not in stored
        assert sealer(NEW).unseal(stored) == SECRET

    def test_without_keys_secrets_are_stored_and_read_as_issued(self) -> None:
        assert sealer().seal(SECRET) == SECRET
        assert sealer().unseal(SECRET) == SECRET
        assert sealer(NEW).unseal(SECRET) == SECRET  # stored before a key was set

    def test_a_sealed_secret_without_its_key_is_explained(self) -> None:
        stored = sealer(OLD).seal(SECRET)
        with pytest.raises(SealedSecretUnavailable, match="not set"):
            sealer().unseal(stored)
        with pytest.raises(SealedSecretUnavailable, match="does not hold"):
            sealer(NEW).unseal(stored)

    def test_rotation_newest_first_opens_old_seals_and_reseals_with_the_newest(self) -> None:
        old = sealer(OLD).seal(SECRET)
        both = sealer(NEW, OLD)
        assert both.unseal(old) == SECRET
        resealed = both.reseal(old)
        assert resealed is not None
        assert sealer(NEW).unseal(resealed) == SECRET
        assert both.reseal(resealed) is None  # already with the newest
        plain = both.reseal(SECRET)
        assert plain is not None
        assert sealer(NEW).unseal(plain) == SECRET

    def test_a_key_that_is_not_a_fernet_key_is_refused_at_start_up(self) -> None:
        with pytest.raises(ValidationError, match="not a Fernet key"):
            RouterSettings(secrets_key=f"{NEW},changeme")


@pytest.fixture
def sealed_runtime(runtime: RouterRuntime) -> RouterRuntime:
    runtime.settings = runtime.settings.model_copy(update={"secrets_key": SecretStr(NEW)})
    return runtime


async def route_and_deliver(runtime: RouterRuntime, settings: RouterSettings) -> None:
    """A routed conversation's events, delivered by a worker with these settings."""
    worker = WebhookWorker(runtime.sessions, settings)
    await worker.start()
    try:
        await new_conversation(runtime)
        await drain(worker)
    finally:
        await worker.stop()


async def test_registered_sealed_delivered_signed_with_the_secret_shown_once(
    sealed_runtime: RouterRuntime,
    api: httpx.AsyncClient,
    webhook_settings: RouterSettings,
    receiver: Receiver,
) -> None:
    endpoint = await register(api, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    async with sealed_runtime.sessions() as session:
        stored = await session.scalar(select(WebhookEndpoint.secret))
    assert stored is not None
    assert stored.startswith(SEALED_PREFIX)
    assert endpoint["secret"] not in stored
    await route_and_deliver(
        sealed_runtime, webhook_settings.model_copy(update={"secrets_key": SecretStr(NEW)})
    )
    assert receiver.requests
    for request in receiver.requests:
        Webhook(endpoint["secret"]).verify(request.body, request.headers)


async def test_without_the_key_nothing_is_sent_unsigned_and_the_attempt_says_why(
    sealed_runtime: RouterRuntime,
    api: httpx.AsyncClient,
    webhook_settings: RouterSettings,
    receiver: Receiver,
) -> None:
    await register(api, receiver.url)
    await route_and_deliver(sealed_runtime, webhook_settings)  # the worker has no key
    assert receiver.requests == []
    async with sealed_runtime.sessions() as session:
        errors = set((await session.scalars(select(WebhookDelivery.last_error))).all())
    assert errors == {"the signing secret is sealed but OMNIROUTE_SECRETS_KEY is not set"}


async def test_existing_secrets_are_sealed_by_the_cli_service(
    runtime: RouterRuntime, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await register(api, receiver.url)  # no key yet: stored as issued
    async with runtime.uow() as uow:
        assert await seal_secrets(uow.session, sealer(NEW)) == 1
    async with runtime.uow() as uow:
        assert await seal_secrets(uow.session, sealer(NEW)) == 0
        stored = await uow.session.scalar(select(WebhookEndpoint.secret))
    assert stored is not None
    assert sealer(NEW).unseal(stored) == endpoint["secret"]


def test_the_cli_prints_a_usable_key_and_refuses_to_seal_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omniroute.services.cli import app

    runner = CliRunner()
    printed = runner.invoke(app, ["webhooks", "new-key"])
    assert printed.exit_code == 0
    assert sealer(printed.output.strip()).sealing
    monkeypatch.delenv("OMNIROUTE_SECRETS_KEY", raising=False)
    refused = runner.invoke(app, ["webhooks", "seal-secrets"])
    assert refused.exit_code != 0
    assert "OMNIROUTE_SECRETS_KEY" in refused.output
