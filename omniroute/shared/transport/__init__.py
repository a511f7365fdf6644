"""The message bus: one interface, an in-process and a Kafka implementation."""

from omniroute.shared.transport.base import (
    BatchHandler,
    Bus,
    BusUnavailable,
    Handler,
    Message,
    decode_event,
    encode_event,
)

__all__ = [
    "BatchHandler",
    "Bus",
    "BusUnavailable",
    "Handler",
    "Message",
    "decode_event",
    "encode_event",
]
