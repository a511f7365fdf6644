"""Topic names: one place, so producers and consumers never disagree."""

CONTACTS_INBOUND = "contacts.inbound"
CONTACTS_CLASSIFIED = "contacts.classified"
ROUTING_EVENTS = "routing.events"


def dead_letter_topic(topic: str, group: str) -> str:
    """Each consumer group has its own dead-letter topic per source topic."""
    return f"{topic}.{group}.dlq"


ALL_TOPICS = (CONTACTS_INBOUND, CONTACTS_CLASSIFIED, ROUTING_EVENTS)
