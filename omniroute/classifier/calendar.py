"""Business-hours calendars: a time zone, working hours per weekday, and public holidays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Beyond this many days without a working minute the calendar is considered broken.
_MAX_DAYS = 800
_CACHED_DAYS = 4000


class CalendarError(ValueError):
    """A calendar that cannot be used (no working hours, bad time zone...)."""


@lru_cache(maxsize=64)
def _holiday_set(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


@dataclass(frozen=True)
class BusinessCalendar:
    """Working intervals per weekday (local time); holidays and extra closed dates are closed.

    A calendar open 24 hours every day is plain wall-clock time.
    """

    name: str
    timezone: str = "UTC"
    # weekday index (0 = Monday) -> sorted, non-overlapping (open, close); close may be 24:00.
    hours: Mapping[int, Sequence[tuple[time, time | None]]] = field(default_factory=dict)
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()
    # Working intervals per day are computed once: every SLA stamp walks the same few days.
    _days: dict[date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except Exception as exc:
            raise CalendarError(f"unknown time zone {self.timezone!r}") from exc
        if not any(self.hours.values()):
            raise CalendarError(f"calendar {self.name!r} has no working hours")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def always_open(cls, name: str = "24x7") -> BusinessCalendar:
        return cls(name=name, timezone="UTC", hours={d: [(time(0), None)] for d in range(7)})

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> BusinessCalendar:
        hours: dict[int, list[tuple[time, time | None]]] = {}
        for key, spans in (data.get("hours") or {}).items():
            days = _parse_days(str(key))
            intervals = [_parse_span(span) for span in _as_list(spans)]
            for day in days:
                hours[day] = sorted(hours.get(day, []) + intervals, key=lambda i: i[0])
        holiday = data.get("holidays") or {}
        return cls(
            name=name,
            timezone=str(data.get("timezone", "UTC")),
            hours=hours,
            holiday_country=holiday.get("country"),
            holiday_subdivision=holiday.get("subdivision"),
            closed_dates=frozenset(date.fromisoformat(str(d)) for d in data.get("closed", [])),
        )

    def is_closed_day(self, day: date) -> bool:
        if day in self.closed_dates:
            return True
        if self.holiday_country is None:
            return False
        return day in _holiday_set(self.holiday_country, self.holiday_subdivision, day.year)

    def is_open(self, moment: datetime) -> bool:
        moment = moment.astimezone(UTC)
        local_day = moment.astimezone(self.zone).date()
        return any(start <= moment < end for start, end in self._intervals(local_day))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start` (an aware datetime), in UTC."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        remaining = duration
        cursor = start.astimezone(UTC)
        day = start.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS):
            for open_at, close_at in self._intervals(day):
                if close_at <= cursor:
                    continue
                begin = max(open_at, cursor)
                available = close_at - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise CalendarError(f"calendar {self.name!r} has no working time within {_MAX_DAYS} days")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time elapsed from `start` to `end` (zero if end is before start)."""
        total = timedelta()
        utc_start, utc_end = start.astimezone(UTC), end.astimezone(UTC)
        day = start.astimezone(self.zone).date()
        while day <= end.astimezone(self.zone).date():
            for open_at, close_at in self._intervals(day):
                begin, finish = max(open_at, utc_start), min(close_at, utc_end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """`day`'s working intervals in UTC, so durations are real time across DST changes."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if len(self._days) >= _CACHED_DAYS:
            self._days.clear()
        cached = self._days[day] = self._compute_intervals(day)
        return cached

    def _compute_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if self.is_closed_day(day):
            return []
        zone = self.zone
        out = []
        for open_t, close_t in self.hours.get(day.weekday(), ()):
            begin = datetime.combine(day, open_t, tzinfo=zone)
            if close_t is None:
                end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
            else:
                end = datetime.combine(day, close_t, tzinfo=zone)
            out.append((begin.astimezone(UTC), end.astimezone(UTC)))
        return out


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _parse_days(key: str) -> list[int]:
    days: list[int] = []
    for part in key.lower().split(","):
        part = part.strip()
        if "-" in part:
            first, last = (_WEEKDAYS.index(p.strip()[:3]) for p in part.split("-", 1))
            days.extend(range(first, last + 1))
        else:
            days.append(_WEEKDAYS.index(part[:3]))
    return days


def _parse_span(span: str) -> tuple[time, time | None]:
    first, last = (s.strip() for s in span.split("-", 1))
    open_t = time.fromisoformat(first)
    close_t = None if last in ("24:00", "24") else time.fromisoformat(last)
    if close_t is not None and close_t <= open_t:
        raise CalendarError(f"working span {span!r} closes before it opens")
    return open_t, close_t
