"""The retry schedule: its default span, the jitter bounds, and when it is exhausted."""

from __future__ import annotations

import pytest

from omniroute.router.webhooks.service import retry_delay
from omniroute.shared.settings import RouterSettings

DAY = 24 * 3600


class TestRetrySchedule:
    def test_the_default_schedule_retries_for_more_than_a_day(self) -> None:
        schedule = RouterSettings().webhook_retry_schedule
        assert sum(schedule) * (1 - RouterSettings().webhook_retry_jitter) > DAY
        assert schedule == sorted(schedule)  # exponential back-off, capped

    def test_the_schedule_is_read_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OMNIROUTE_WEBHOOK_RETRY_SCHEDULE", "[1, 2.5]")
        assert RouterSettings().webhook_retry_schedule == [1, 2.5]

    def test_a_negative_delay_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIROUTE_WEBHOOK_RETRY_SCHEDULE", "[5, -1]")
        with pytest.raises(ValueError, match="RETRY_SCHEDULE"):
            RouterSettings()

    def test_each_failure_takes_the_next_delay(self) -> None:
        schedule = [5, 30, 120]
        assert [retry_delay(n, schedule, 0) for n in (1, 2, 3)] == [5, 30, 120]

    def test_after_the_last_delay_the_delivery_is_given_up(self) -> None:
        assert retry_delay(4, [5, 30, 120], 0.1) is None
        assert retry_delay(1, [], 0.1) is None

    def test_jitter_stays_within_its_fraction(self) -> None:
        delays = {retry_delay(1, [100], 0.1) for _ in range(200)}
        assert all(90 <= delay <= 110 for delay in delays if delay is not None)
        assert len(delays) > 1  # spread, so failed receivers are not hit all at once
