"""SLA policies per channel x priority x tier, stamped as due times on business calendars."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

import yaml

from omniroute.classifier.calendar import BusinessCalendar
from omniroute.shared.events import Channel, PriorityLevel, SlaResult, Visibility

DEFAULT_SLA = "sla.yaml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SlaFields(TypedDict):
    """The fields of an SlaResult: the pipeline validates them once, with the whole contact."""

    policy: str
    first_response_due: datetime
    resolution_due: datetime | None


class SlaConfigError(ValueError):
    """The SLA file is malformed."""


def parse_duration(value: str | int | float) -> timedelta:
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(value)
    if match is None:
        raise SlaConfigError(f"bad duration {value!r}; use e.g. 90s, 5m, 4h, 2d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Policy:
    name: str
    calendar: BusinessCalendar
    first_response: Mapping[PriorityLevel, timedelta]
    resolution: Mapping[PriorityLevel, timedelta]


class SlaBook:
    def __init__(
        self,
        policies: Mapping[str, Policy],
        channels: Mapping[str, str],
        tiers: Mapping[str, float],
        public_policy: str | None,
        spam_policy: str | None,
    ) -> None:
        self.policies = dict(policies)
        self.channels = dict(channels)
        self.tiers = dict(tiers)
        self.public_policy = public_policy
        self.spam_policy = spam_policy

    def policy_for(self, channel: Channel, visibility: Visibility, spam: bool) -> Policy:
        if spam and self.spam_policy:
            return self.policies[self.spam_policy]
        if visibility is Visibility.PUBLIC and self.public_policy:
            return self.policies[self.public_policy]
        return self.policies[self.channels.get(channel.value, "email")]

    def stamp(
        self,
        *,
        channel: Channel,
        visibility: Visibility,
        priority: PriorityLevel,
        tier: str | None,
        received_at: datetime,
        spam: bool = False,
    ) -> SlaResult:
        return SlaResult.model_validate(
            self.stamp_fields(
                channel=channel,
                visibility=visibility,
                priority=priority,
                tier=tier,
                received_at=received_at,
                spam=spam,
            )
        )

    def stamp_fields(
        self,
        *,
        channel: Channel,
        visibility: Visibility,
        priority: PriorityLevel,
        tier: str | None,
        received_at: datetime,
        spam: bool = False,
    ) -> SlaFields:
        """The fields of `stamp`'s SlaResult, for a caller that validates them with others."""
        policy = self.policy_for(channel, visibility, spam)
        tier_name = (tier or "standard").lower()
        factor = self.tiers.get(tier_name, self.tiers.get("standard", 1.0))
        if tier_name not in self.tiers:
            tier_name = "standard"
        first = policy.first_response[priority] * factor
        resolution = policy.resolution.get(priority)
        return {
            "policy": f"{policy.name}.{priority.value}.{tier_name}",
            "first_response_due": policy.calendar.add(received_at, first),
            "resolution_due": (
                policy.calendar.add(received_at, resolution * factor) if resolution else None
            ),
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], default_timezone: str) -> SlaBook:
        calendars: dict[str, BusinessCalendar] = {}
        for name, spec in (data.get("calendars") or {}).items():
            spec = dict(spec)
            spec.setdefault("timezone", default_timezone)
            calendars[name] = BusinessCalendar.from_mapping(name, spec)
        policies: dict[str, Policy] = {}
        for name, spec in (data.get("policies") or {}).items():
            calendar_name = spec.get("calendar")
            if calendar_name not in calendars:
                raise SlaConfigError(f"policy {name!r} uses unknown calendar {calendar_name!r}")
            first = _targets(name, spec.get("first_response"), required=True)
            policies[name] = Policy(
                name=name,
                calendar=calendars[calendar_name],
                first_response=first,
                resolution=_targets(name, spec.get("resolution"), required=False),
            )
        if not policies:
            raise SlaConfigError("no SLA policies")
        channels = {str(k): str(v) for k, v in (data.get("channels") or {}).items()}
        for channel, policy in channels.items():
            if policy not in policies:
                raise SlaConfigError(f"channel {channel!r} maps to unknown policy {policy!r}")
        if "email" not in policies and any(c.value not in channels for c in Channel):
            raise SlaConfigError("every channel needs a policy (or an 'email' fallback)")
        return cls(
            policies=policies,
            channels=channels,
            tiers={str(k): float(v) for k, v in (data.get("tiers") or {"standard": 1.0}).items()},
            public_policy=data.get("public_policy"),
            spam_policy=data.get("spam_policy"),
        )

    @classmethod
    def load(cls, path: Path | None, default_timezone: str) -> SlaBook:
        if path is None:
            text = resources.files("omniroute.classifier.data").joinpath(DEFAULT_SLA).read_text()
        else:
            text = path.read_text(encoding="utf-8")
        return cls.from_mapping(yaml.safe_load(text), default_timezone)


def _targets(
    policy: str, raw: Mapping[str, Any] | None, *, required: bool
) -> dict[PriorityLevel, timedelta]:
    if not raw:
        if required:
            raise SlaConfigError(f"policy {policy!r} needs first_response targets")
        return {}
    targets = {PriorityLevel(level): parse_duration(value) for level, value in raw.items()}
    if required and set(targets) != set(PriorityLevel):
        raise SlaConfigError(f"policy {policy!r} needs a target for each of P1-P4")
    return targets
