"""The Kafka bus's deadline watch: acks not given in time fail, others are left alone."""

from __future__ import annotations

import asyncio
import gc
import math

import pytest

from omniroute.shared.transport.kafka import AckTimeout, _AckDeadlines, _Stopping


async def test_only_acks_past_their_deadline_fail() -> None:
    loop = asyncio.get_running_loop()
    watch = _AckDeadlines()
    given, late, later = loop.create_future(), loop.create_future(), loop.create_future()
    watch.watch(10.0, [given, late])
    watch.watch(20.0, [later])
    given.set_result("ack")
    watch.expire(now=15.0)
    assert given.result() == "ack"
    with pytest.raises(AckTimeout):
        late.result()
    assert not later.done()
    watch.expire(now=math.inf)  # what is left when the bus stops
    with pytest.raises(AckTimeout):
        later.result()


async def test_an_expired_ack_nobody_awaits_is_not_reported_as_lost() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    watch = _AckDeadlines()
    watch.watch(1.0, [loop.create_future()])
    watch.expire(now=2.0)
    gc.collect()
    assert reported == []


async def test_the_watch_fails_a_late_ack_while_a_publish_waits() -> None:
    loop = asyncio.get_running_loop()
    watch, stopping = _AckDeadlines(), _Stopping()
    task = asyncio.create_task(watch.run(stopping))
    ack = loop.create_future()
    watch.watch(loop.time() + 0.05, [ack])
    with pytest.raises(AckTimeout):
        await asyncio.wait_for(ack, 10)
    stopping.event.set()
    await asyncio.wait_for(task, 10)
