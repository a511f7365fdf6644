"""Notice templates per kind, channel and language, and the wording of dates and greetings.

The shipped `templates.yaml` holds the defaults (Spanish and English); a file named by
OMNIROUTE_TEMPLATES_PATH is merged over it entry by entry. Templates are checked at load time,
so a typo in a placeholder fails at start-up, not when a customer is waiting for an answer.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DEFAULTS = Path(__file__).with_name("templates.yaml")
DEFAULT_STYLE = "default"
FALLBACK_LANGUAGE = "en"
PLACEHOLDERS = frozenset({"greeting", "brand", "reference", "due", "agent"})

_DAYS = {
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
}


class TemplateError(ValueError):
    """A template file that cannot be used."""


@dataclass(frozen=True)
class Template:
    text: str
    subject: str | None = None


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _check(where: str, entry: Any) -> Template:
    if isinstance(entry, str):
        entry = {"text": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        raise TemplateError(f"{where}: needs a text")
    subject = entry.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise TemplateError(f"{where}: the subject must be text")
    for part in (entry["text"], subject or ""):
        try:
            unknown = _fields(part) - PLACEHOLDERS
        except ValueError as exc:
            raise TemplateError(f"{where}: {exc}") from exc
        if unknown:
            raise TemplateError(f"{where}: unknown placeholders {sorted(unknown)}")
    return Template(text=entry["text"].strip(), subject=subject.strip() if subject else None)


def _read(path: Path) -> dict[str, dict[str, dict[str, Template]]]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise TemplateError(f"{path}: expected kind -> channel -> language -> template")
    table: dict[str, dict[str, dict[str, Template]]] = {}
    for kind, channels in raw.items():
        if not isinstance(channels, dict):
            raise TemplateError(f"{path}: {kind}: expected channel -> language -> template")
        for channel, languages in channels.items():
            if not isinstance(languages, dict):
                raise TemplateError(f"{path}: {kind}.{channel}: expected language -> template")
            for language, entry in languages.items():
                where = f"{path.name}: {kind}.{channel}.{language}"
                table.setdefault(str(kind), {}).setdefault(str(channel), {})[str(language)] = (
                    _check(where, entry)
                )
    return table


class Templates:
    def __init__(self, table: dict[str, dict[str, dict[str, Template]]]) -> None:
        self._table = table

    @classmethod
    def load(cls, override: Path | None = None) -> Templates:
        table = _read(DEFAULTS)
        if override is not None:
            for kind, channels in _read(override).items():
                for channel, languages in channels.items():
                    table.setdefault(kind, {}).setdefault(channel, {}).update(languages)
        return cls(table)

    def find(self, kind: str, channel: str, language: str) -> tuple[Template, str]:
        """The template for the channel (else the default style) in the language (else English);
        returns it with the language it is written in."""
        styles = self._table.get(kind, {})
        for lang in dict.fromkeys((language, FALLBACK_LANGUAGE)):
            for style in (channel, DEFAULT_STYLE):
                template = styles.get(style, {}).get(lang)
                if template is not None:
                    return template, lang
        raise TemplateError(f"no {kind} template for {channel} in {language} or English")


def base_language(code: str | None) -> str:
    """ "es-ES", "ES" and "es" are all Spanish; "und" or nothing means unknown."""
    if not code:
        return FALLBACK_LANGUAGE
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base and base != "und" else FALLBACK_LANGUAGE


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def format_due(moment: datetime, language: str, tz: ZoneInfo) -> str:
    """'lunes 23 de noviembre a las 10:15 (CET)' / 'Monday 23 November at 10:15 (CET)'."""
    local = moment.astimezone(tz)
    lang = language if language in _DAYS else FALLBACK_LANGUAGE
    day = _DAYS[lang][local.weekday()]
    month = _MONTHS[lang][local.month - 1]
    clock = local.strftime("%H:%M")
    abbreviation = local.tzname() or tz.key
    if lang == "es":
        return f"{day} {local.day} de {month} a las {clock} ({abbreviation})"
    return f"{day} {local.day} {month} at {clock} ({abbreviation})"


def greeting(moment: datetime, language: str, tz: ZoneInfo) -> str:
    hour = moment.astimezone(tz).hour
    if language == "es":
        # Spanish days run late: "buenos días" until lunch, "buenas tardes" until dinner.
        if 6 <= hour < 14:
            return "Buenos días"
        return "Buenas tardes" if 14 <= hour < 21 else "Buenas noches"
    if 5 <= hour < 12:
        return "Good morning"
    return "Good afternoon" if 12 <= hour < 18 else "Good evening"


def render(template: Template, values: dict[str, str]) -> tuple[str | None, str]:
    subject = template.subject.format_map(values) if template.subject else None
    return subject, template.text.format_map(values)
