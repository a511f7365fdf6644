"""Channel adapters: one module per channel, registered in `default_registry`.

Adding a channel: write `channels/<name>.py` with a class satisfying `ChannelAdapter` (its
`parse` builds contacts with `InboundContact.build`, so ids derive from the provider's ids),
add it to `default_registry`, and put its tests in tests/gateway/test_<name>.py. The routes
`POST /v1/channels/<name>` (and `GET` for a signature channel's handshake) follow.
"""

from __future__ import annotations

from omniroute.gateway.channels.base import AdapterRegistry, ChannelAdapter, RawDelivery
from omniroute.gateway.channels.chat import ChatAdapter
from omniroute.gateway.channels.email import EmailAdapter
from omniroute.gateway.channels.inbound_parse import (
    MailgunAdapter,
    PostmarkAdapter,
    SendGridAdapter,
)
from omniroute.gateway.channels.meta import MetaAdapter
from omniroute.gateway.channels.phone import PhoneAdapter
from omniroute.gateway.channels.twilio import TwilioAdapter
from omniroute.gateway.channels.x import XAdapter

__all__ = ["AdapterRegistry", "ChannelAdapter", "RawDelivery", "default_registry"]


def default_registry() -> AdapterRegistry:
    """Every channel the gateway serves; a new channel is one more line here."""
    return AdapterRegistry(
        [
            EmailAdapter(),
            ChatAdapter(),
            MetaAdapter(),
            PhoneAdapter(),
            SendGridAdapter(),
            MailgunAdapter(),
            PostmarkAdapter(),
            TwilioAdapter(),
            XAdapter(),
        ]
    )
