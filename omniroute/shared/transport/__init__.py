"""The message bus: one interface, an in-process and a Kafka implementation."""

from omniroute.shared.transport.base import (
    Bus,
    BusUnavailable,
    Handler,
    Message,
    decode_event,
    encode_event,
)

__all__ = ["Bus", "BusUnavailable", "Handler", "Message", "decode_event", "encode_event"]
