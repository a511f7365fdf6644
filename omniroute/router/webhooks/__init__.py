"""Outbound webhooks: signed, retried deliveries of routing events to integrations."""
