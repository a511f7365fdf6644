"""The adapter registry and the helpers adapters share."""

from __future__ import annotations

import pytest

from omniroute.gateway.channels import ChannelAdapter, default_registry
from omniroute.gateway.channels.base import (
    AdapterRegistry,
    bounded_identifier,
    decode_json,
    from_epoch,
    parse_iso,
)
from omniroute.gateway.channels.chat import ChatAdapter
from omniroute.shared.errors import BadRequest


class TestRegistry:
    def test_default_channels(self) -> None:
        registry = default_registry()
        assert sorted(registry.names()) == [
            "chat",
            "email",
            "mailgun",
            "meta",
            "phone",
            "postmark",
            "sendgrid",
            "twilio",
            "x",
        ]
        assert all(isinstance(adapter, ChannelAdapter) for adapter in registry)

    def test_signature_authenticated_channels(self) -> None:
        signed = [a.name for a in default_registry() if a.authentication == "signature"]
        assert signed == ["meta", "twilio", "x"]

    def test_duplicate_names_are_refused(self) -> None:
        with pytest.raises(ValueError, match="already registered"):
            AdapterRegistry([ChatAdapter(), ChatAdapter()])


class TestHelpers:
    def test_long_identifiers_become_digests(self) -> None:
        long = "x" * 600
        assert bounded_identifier(long).startswith("sha256:")
        assert bounded_identifier(long) == bounded_identifier(long)
        assert bounded_identifier(" short ") == "short"


class TestJson:
    def test_bom_is_tolerated(self) -> None:
        assert decode_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}

    @pytest.mark.parametrize("body", [b"", b"   ", b"{", b"\xff\xfe{}", b"[" * 100_000])
    def test_unparseable_is_a_bad_request(self, body: bytes) -> None:
        with pytest.raises(BadRequest):
            decode_json(body)


class TestTimestamps:
    def test_epoch_millis(self) -> None:
        parsed = from_epoch(1700000000000, millis=True)
        assert parsed is not None
        assert parsed.year == 2023

    @pytest.mark.parametrize("value", [None, "soon", 1e30, [], float("nan")])
    def test_junk_is_none(self, value: object) -> None:
        assert from_epoch(value) is None

    def test_iso_with_z(self) -> None:
        parsed = parse_iso("2022-10-27T03:31:50.735Z")
        assert parsed is not None
        assert parsed.utcoffset() is not None
