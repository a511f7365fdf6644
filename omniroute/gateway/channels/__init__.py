"""Channel adapters: one module per channel, registered in `default_registry`."""

from __future__ import annotations

from omniroute.gateway.channels.base import AdapterRegistry, ChannelAdapter, RawDelivery
from omniroute.gateway.channels.chat import ChatAdapter
from omniroute.gateway.channels.email import EmailAdapter
from omniroute.gateway.channels.meta import MetaAdapter
from omniroute.gateway.channels.phone import PhoneAdapter

__all__ = ["AdapterRegistry", "ChannelAdapter", "RawDelivery", "default_registry"]


def default_registry() -> AdapterRegistry:
    """Every channel the gateway serves; a new channel is one more line here."""
    return AdapterRegistry([EmailAdapter(), ChatAdapter(), MetaAdapter(), PhoneAdapter()])
