"""Pick the bus implementation from OMNIROUTE_BUS."""

from __future__ import annotations

from omniroute.shared.settings import BusSettings
from omniroute.shared.transport.base import Bus
from omniroute.shared.transport.inprocess import InProcessBus


def create_bus(settings: BusSettings) -> Bus:
    """inprocess:// gives the embedded bus, kafka://host:port[,host:port] the Kafka bus."""
    if settings.is_kafka:
        # Imported here so the embedded default never loads aiokafka.
        from omniroute.shared.transport.kafka import KafkaBus

        return KafkaBus(settings)
    return InProcessBus(attempts=settings.bus_handler_attempts)
