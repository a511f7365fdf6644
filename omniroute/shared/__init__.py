"""Contracts shared by every stage: events, transport, settings, database, errors, auth."""
