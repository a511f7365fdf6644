"""The router's bus handler: a batch of classified contacts stored in one transaction."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from omniroute.router.consumers import make_route_handler
from omniroute.router.models import Contact
from omniroute.router.runtime import RouterRuntime
from omniroute.shared import topics
from omniroute.shared.transport import Message, encode_event
from tests.builders import classified


def router_lag() -> tuple[float, float]:
    """(count, sum) of the router hop of omniroute_pipeline_lag_seconds so far."""
    labels = {"hop": "router"}
    count = REGISTRY.get_sample_value("omniroute_pipeline_lag_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("omniroute_pipeline_lag_seconds_sum", labels) or 0.0
    return count, total


async def test_a_batch_is_stored_and_its_wait_on_the_bus_measured(runtime: RouterRuntime) -> None:
    handle = make_route_handler(runtime)
    contacts = [classified(external_id=f"lag-{index}") for index in range(3)]
    # One of them was classified a minute ago: it waited that long for the router.
    contacts[0] = contacts[0].model_copy(
        update={"classified_at": contacts[0].classified_at - timedelta(seconds=60)}
    )
    before_count, before_sum = router_lag()
    await handle(
        [
            Message(topic=topics.CONTACTS_CLASSIFIED, key=None, value=encode_event(contact))
            for contact in contacts
        ]
    )
    count, total = router_lag()
    assert count - before_count == 3
    assert 60 <= total - before_sum < 120
    async with runtime.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Contact))
    assert stored == 3
