"""Routing rules: a YAML file maps classified contacts to queues."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from omniroute.shared.events import ClassifiedContact


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueSpec(_Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    required_skills: list[str] = Field(default_factory=list)


class Condition(_Strict):
    category: list[str] | None = None
    channel: list[str] | None = None
    language: list[str] | None = None
    tier: list[str] | None = None
    priority: list[str] | None = None
    visibility: list[str] | None = None
    min_anger: float | None = Field(default=None, ge=0, le=1)
    legal_threat: bool | None = None

    def matches(self, contact: ClassifiedContact) -> bool:
        inbound = contact.contact
        checks: list[tuple[list[str] | None, str | None]] = [
            (self.category, contact.category.category),
            (self.channel, inbound.channel.value),
            (self.language, contact.language.code),
            (self.tier, inbound.customer.tier),
            (self.priority, contact.priority.level.value),
            (self.visibility, inbound.visibility.value),
        ]
        for allowed, value in checks:
            if allowed is not None and value not in allowed:
                return False
        if self.min_anger is not None and contact.sentiment.anger < self.min_anger:
            return False
        return self.legal_threat is None or contact.urgency.legal_threat == self.legal_threat


class Rule(_Strict):
    name: str
    queue: str
    when: Condition = Field(default_factory=Condition)


class RoutingRules(_Strict):
    queues: list[QueueSpec]
    rules: list[Rule] = Field(default_factory=list)
    default_queue: str

    @model_validator(mode="after")
    def _queues_exist(self) -> Self:
        names = {queue.name for queue in self.queues}
        unknown = {rule.queue for rule in self.rules if rule.queue not in names}
        if self.default_queue not in names:
            unknown.add(self.default_queue)
        if unknown:
            raise ValueError(f"rules name queues that are not defined: {sorted(unknown)}")
        return self

    def queue_for(self, contact: ClassifiedContact) -> tuple[str, str]:
        """The queue name and the rule that chose it."""
        for rule in self.rules:
            if rule.when.matches(contact):
                return rule.queue, rule.name
        return self.default_queue, "default"

    @classmethod
    def load(cls, path: Path | None = None) -> RoutingRules:
        if path is None:
            text = resources.files(__package__).joinpath("default_rules.yaml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        return cls.model_validate(yaml.safe_load(text))
