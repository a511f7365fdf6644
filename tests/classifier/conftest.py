"""Classifier test helpers: one classifier per session (it loads language models and trains)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from omniroute.classifier.pipeline import Classifier
from omniroute.shared.events import Channel, CustomerRef, InboundContact, Visibility
from omniroute.shared.settings import ClassifierSettings

# A Wednesday morning in Madrid, away from holidays, so SLA figures are easy to read.
WEDNESDAY_10_MADRID = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    return Classifier(ClassifierSettings(model_dir=None, threshold=0.35, timezone="Europe/Madrid"))


def contact(
    text: str,
    *,
    channel: Channel = Channel.EMAIL,
    visibility: Visibility = Visibility.PRIVATE,
    tier: str | None = None,
    language: str | None = None,
    conversation_key: str | None = None,
    received_at: datetime = WEDNESDAY_10_MADRID,
    **fields: Any,
) -> InboundContact:
    external_id = uuid.uuid4().hex
    return InboundContact.build(
        channel=channel,
        external_id=external_id,
        conversation_key=conversation_key or external_id,
        received_at=received_at,
        text=text,
        visibility=visibility,
        customer=CustomerRef(tier=tier, language=language),
        **fields,
    )
