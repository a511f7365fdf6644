from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omniroute.classifier.sla import SlaBook, SlaConfigError, parse_duration
from omniroute.shared.events import Channel, PriorityLevel, Visibility

# Wednesday 12 March 2025, 10:00 in Madrid.
WEDNESDAY = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
FRIDAY_EVENING = datetime(2025, 3, 14, 19, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> SlaBook:
    return SlaBook.load(None, "Europe/Madrid")


def stamp(book: SlaBook, channel: Channel, **kwargs: object):
    params: dict[str, object] = {
        "visibility": Visibility.PRIVATE,
        "priority": PriorityLevel.P3,
        "tier": None,
        "received_at": WEDNESDAY,
    }
    params.update(kwargs)
    return book.stamp(channel=channel, **params)  # type: ignore[arg-type]


class TestDefaultsFollowTheHandbook:
    def test_email_first_answer_within_24_business_hours(self, book: SlaBook) -> None:
        sla = stamp(book, Channel.EMAIL)
        assert sla.policy == "email.P3.standard"
        # 08:00-20:00 working days: 10h left on Wednesday, 12h Thursday, 2h on Friday.
        assert sla.first_response_due == datetime(2025, 3, 14, 9, 0, tzinfo=UTC)

    def test_email_on_friday_evening_skips_the_weekend(self, book: SlaBook) -> None:
        sla = stamp(book, Channel.EMAIL, received_at=FRIDAY_EVENING)
        assert sla.first_response_due == datetime(2025, 3, 18, 19, 0, tzinfo=UTC)

    def test_chat_is_answered_within_minutes(self, book: SlaBook) -> None:
        sla = stamp(book, Channel.CHAT)
        assert sla.first_response_due - WEDNESDAY <= timedelta(minutes=10)

    def test_public_posts_within_the_hour_even_at_night(self, book: SlaBook) -> None:
        sla = stamp(book, Channel.X, visibility=Visibility.PUBLIC, received_at=FRIDAY_EVENING)
        assert sla.policy.startswith("social_public.")
        assert sla.first_response_due - FRIDAY_EVENING <= timedelta(hours=1)

    def test_private_messages_use_the_messaging_policy(self, book: SlaBook) -> None:
        assert stamp(book, Channel.WHATSAPP).policy == "messaging.P3.standard"

    def test_phone_callbacks(self, book: SlaBook) -> None:
        sla = stamp(book, Channel.PHONE, priority=PriorityLevel.P1)
        assert sla.first_response_due - WEDNESDAY == timedelta(minutes=30)


class TestPriorityAndTier:
    def test_higher_priority_is_due_sooner(self, book: SlaBook) -> None:
        dues = [stamp(book, Channel.EMAIL, priority=p).first_response_due for p in PriorityLevel]
        assert dues == sorted(dues)
        assert dues[0] < dues[-1]

    def test_vip_targets_are_halved(self, book: SlaBook) -> None:
        standard = stamp(book, Channel.CHAT)
        vip = stamp(book, Channel.CHAT, tier="vip")
        assert vip.policy == "chat.P3.vip"
        assert vip.first_response_due - WEDNESDAY == (standard.first_response_due - WEDNESDAY) / 2

    def test_unknown_tier_is_standard(self, book: SlaBook) -> None:
        assert stamp(book, Channel.CHAT, tier="gold").policy == "chat.P3.standard"

    def test_spam_goes_to_its_own_policy(self, book: SlaBook) -> None:
        assert stamp(book, Channel.EMAIL, spam=True).policy.startswith("spam.")


class TestConfiguration:
    def test_durations(self) -> None:
        assert parse_duration("90s") == timedelta(seconds=90)
        assert parse_duration("1.5h") == timedelta(minutes=90)
        with pytest.raises(SlaConfigError):
            parse_duration("soon")

    def test_policy_needs_every_priority(self) -> None:
        data = {
            "calendars": {"c": {"hours": {"mon-fri": "09:00-17:00"}}},
            "policies": {"email": {"calendar": "c", "first_response": {"P1": "1h"}}},
        }
        with pytest.raises(SlaConfigError, match="P1-P4"):
            SlaBook.from_mapping(data, "UTC")

    def test_unknown_calendar(self) -> None:
        data = {"policies": {"email": {"calendar": "nope", "first_response": {}}}}
        with pytest.raises(SlaConfigError, match="unknown calendar"):
            SlaBook.from_mapping(data, "UTC")
