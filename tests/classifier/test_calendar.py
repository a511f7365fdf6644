from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from omniroute.classifier.calendar import BusinessCalendar, CalendarError


def office(timezone: str = "Europe/Madrid", country: str | None = "ES") -> BusinessCalendar:
    return BusinessCalendar.from_mapping(
        "office",
        {
            "timezone": timezone,
            "hours": {"mon-fri": "09:00-17:00"},
            "holidays": {"country": country} if country else {},
        },
    )


def madrid(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=office().zone)


class TestWithinADay:
    def test_adds_inside_working_hours(self) -> None:
        due = office().add(madrid(2025, 3, 12, 10, 0), timedelta(hours=2))
        assert due == madrid(2025, 3, 12, 12, 0)

    def test_starts_counting_at_opening_time(self) -> None:
        due = office().add(madrid(2025, 3, 12, 6, 30), timedelta(hours=1))
        assert due == madrid(2025, 3, 12, 10, 0)

    def test_rolls_over_to_the_next_morning(self) -> None:
        due = office().add(madrid(2025, 3, 12, 16, 0), timedelta(hours=3))
        assert due == madrid(2025, 3, 13, 11, 0)


class TestWeekends:
    def test_friday_afternoon_lands_on_monday(self) -> None:
        due = office().add(madrid(2025, 3, 14, 16, 0), timedelta(hours=2))
        assert due == madrid(2025, 3, 17, 10, 0)

    def test_saturday_waits_for_monday(self) -> None:
        due = office().add(madrid(2025, 3, 15, 12, 0), timedelta(hours=8))
        assert due == madrid(2025, 3, 17, 17, 0)

    def test_twenty_four_business_hours_span_three_working_days(self) -> None:
        due = office().add(madrid(2025, 3, 14, 9, 0), timedelta(hours=24))
        assert due == madrid(2025, 3, 18, 17, 0)


class TestHolidays:
    def test_national_holiday_is_skipped(self) -> None:
        # 1 May 2025 (Thursday) is Labour Day in Spain.
        due = office().add(madrid(2025, 4, 30, 16, 0), timedelta(hours=2))
        assert due == madrid(2025, 5, 2, 10, 0)

    def test_christmas_and_new_year(self) -> None:
        due = office().add(madrid(2025, 12, 24, 16, 0), timedelta(hours=8))
        assert due == madrid(2025, 12, 26, 16, 0)

    def test_regional_holidays_follow_the_subdivision(self) -> None:
        # 23 April is Aragón's day (Zaragoza) but a working day in Madrid.
        aragon = BusinessCalendar.from_mapping(
            "zgz",
            {
                "timezone": "Europe/Madrid",
                "hours": {"mon-fri": "09:00-17:00"},
                "holidays": {"country": "ES", "subdivision": "AR"},
            },
        )
        start = madrid(2025, 4, 22, 16, 0)
        assert aragon.add(start, timedelta(hours=2)) == madrid(2025, 4, 24, 10, 0)
        assert office().add(start, timedelta(hours=2)) == madrid(2025, 4, 23, 10, 0)

    def test_extra_closed_dates(self) -> None:
        calendar = BusinessCalendar.from_mapping(
            "closed",
            {"timezone": "UTC", "hours": {"mon-fri": "09:00-17:00"}, "closed": ["2025-03-13"]},
        )
        due = calendar.add(datetime(2025, 3, 12, 16, tzinfo=UTC), timedelta(hours=2))
        assert due == datetime(2025, 3, 14, 10, tzinfo=UTC)


class TestTimeZones:
    def test_utc_input_is_read_in_the_calendar_zone(self) -> None:
        # 08:30 UTC is 17:30 in Tokyo: after hours, so the hour is worked next morning.
        tokyo = office("Asia/Tokyo", country="JP")
        due = tokyo.add(datetime(2025, 3, 12, 8, 30, tzinfo=UTC), timedelta(hours=1))
        assert due == datetime(2025, 3, 13, 1, 0, tzinfo=UTC)

    def test_result_is_utc(self) -> None:
        due = office().add(madrid(2025, 3, 12, 10), timedelta(minutes=30))
        assert due.tzinfo is UTC

    def test_daylight_saving_change_keeps_local_working_hours(self) -> None:
        # Spain moves to CEST on Sunday 30 March 2025: Friday 16:00 CET + 2h = Monday 10:00 CEST.
        due = office().add(madrid(2025, 3, 28, 16, 0), timedelta(hours=2))
        assert due == datetime(2025, 3, 31, 8, 0, tzinfo=UTC)

    def test_round_the_clock_calendar_is_wall_clock_time(self) -> None:
        always = BusinessCalendar.always_open()
        start = datetime(2025, 3, 29, 22, 0, tzinfo=UTC)
        assert always.add(start, timedelta(hours=5)) == start + timedelta(hours=5)

    def test_naive_datetimes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            office().add(datetime(2025, 3, 12, 10), timedelta(hours=1))


class TestWorkingTimeBetween:
    def test_counts_only_working_time(self) -> None:
        elapsed = office().working_time_between(
            madrid(2025, 3, 14, 16, 0), madrid(2025, 3, 17, 10, 0)
        )
        assert elapsed == timedelta(hours=2)

    def test_is_open(self) -> None:
        assert office().is_open(madrid(2025, 3, 12, 10))
        assert not office().is_open(madrid(2025, 3, 15, 10))


class TestBadCalendars:
    def test_no_hours(self) -> None:
        with pytest.raises(CalendarError):
            BusinessCalendar(name="x", timezone="UTC", hours={})

    def test_unknown_zone(self) -> None:
        with pytest.raises(CalendarError):
            BusinessCalendar(name="x", timezone="Mars/Base", hours={0: [(time(9), time(17))]})

    def test_closing_before_opening(self) -> None:
        with pytest.raises(CalendarError):
            BusinessCalendar.from_mapping("x", {"hours": {"mon": "17:00-09:00"}})
