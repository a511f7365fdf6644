"""The one phone policy: E.164, national numbers in the deployment's region, no guessing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from omniroute.shared import identity
from omniroute.shared.identity import normalise_phone
from omniroute.shared.settings import AppSettings


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set OMNIROUTE_DEFAULT_PHONE_REGION for one test (the region is read once per process)."""
    identity.default_region.cache_clear()
    yield monkeypatch
    identity.default_region.cache_clear()


@pytest.mark.parametrize(
    ("number", "international", "expected"),
    [
        ("+34 600 111 222", False, "+34600111222"),
        ("whatsapp:+34600111222", False, "+34600111222"),
        ("tel:+1-202-555-0123", False, "+12025550123"),
        ("600 111 222", False, "+34600111222"),  # national, in the default region (ES)
        ("0034 600 111 222", False, "+34600111222"),  # Spain's international prefix
        ("972987654321", False, "+972987654321"),  # longer than any national number
        ("34600111222", True, "+34600111222"),  # a WhatsApp id
        ("4930123456", True, "+4930123456"),
        ("4930123456", False, None),  # ten digits, not Spanish: not guessed
        ("12", False, None),
        ("not a number", False, None),
        ("", False, None),
        (None, False, None),
    ],
)
def test_the_default_policy(
    region: pytest.MonkeyPatch, number: str | None, international: bool, expected: str | None
) -> None:
    region.delenv("OMNIROUTE_DEFAULT_PHONE_REGION", raising=False)
    assert normalise_phone(number, international=international) == expected


def test_national_numbers_follow_the_configured_region(region: pytest.MonkeyPatch) -> None:
    region.setenv("OMNIROUTE_DEFAULT_PHONE_REGION", "gb")
    assert normalise_phone("020 7946 0018") == "+442079460018"
    assert normalise_phone("600 111 222") is None  # not a British number
    assert normalise_phone("+34 600 111 222") == "+34600111222"


def test_without_a_region_only_international_numbers_are_read(
    region: pytest.MonkeyPatch,
) -> None:
    region.setenv("OMNIROUTE_DEFAULT_PHONE_REGION", "")
    assert normalise_phone("600 111 222") is None
    assert normalise_phone("+34 600 111 222") == "+34600111222"
    assert normalise_phone("972987654321") == "+972987654321"


def test_an_unknown_region_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="not a region"):
        AppSettings(default_phone_region="XX")
