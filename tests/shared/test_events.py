"""Deterministic ids: the same provider ids always give the same UUIDs, and always will."""

from __future__ import annotations

import random
import uuid

from omniroute.shared.events import (
    OMNIROUTE_NAMESPACE,
    Channel,
    contact_id_for,
    conversation_id_for,
)


def test_ids_are_rfc_4122_uuid5_of_the_namespace() -> None:
    rng = random.Random(5)
    alphabet = "abcXYZ019:-_<>@.é€ñ😀 "
    for _ in range(2000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        channel = rng.choice(list(Channel))
        contact = contact_id_for(channel, key)
        conversation = conversation_id_for(channel, key)
        assert contact == uuid.uuid5(OMNIROUTE_NAMESPACE, f"contact:{channel}:{key}")
        assert conversation == uuid.uuid5(OMNIROUTE_NAMESPACE, f"conversation:{channel}:{key}")
        assert (contact.version, contact.variant) == (5, uuid.RFC_4122)


def test_ids_already_issued_never_change() -> None:
    assert str(contact_id_for(Channel.API, "crm-123")) == "b72c38ab-9167-5359-80fb-64fa61e9d351"
    assert str(conversation_id_for("email", "<a@b>")) == "cd1344b8-698f-5b40-bfe6-2bf2481110ac"
