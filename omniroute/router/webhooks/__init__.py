"""Outbound webhooks: every routing event, signed and retried, to the integrations' endpoints.

What a receiver gets, per event and endpoint (`POST /v1/webhooks` registers one):

- `POST <url>` with `content-type: application/json` and the body
  `{"type", "event_id", "conversation_id", "occurred_at", "data"}`;
- Standard Webhooks headers: `webhook-id` (the delivery's message id, the same on every retry
  and replay: deduplicate on it), `webhook-timestamp` (unix seconds of this attempt) and
  `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the
  base64-decoded part of the endpoint's `whsec_...` secret). Any Standard Webhooks library
  verifies it, e.g. `standardwebhooks.Webhook(secret).verify(body, headers)`;
- any 2xx is a delivery; anything else, a redirect, a timeout or a network error is retried
  after 5s, 30s, 2m, 10m, 30m, 1h, 2h, 4h, 8h, 8h, 8h (+/-10% jitter; about 31.7 hours in all,
  `OMNIROUTE_WEBHOOK_RETRY_SCHEDULE`), then dead-lettered until replayed through
  `POST /v1/webhooks/deliveries/{id}/replay`.

Delivery is at least once and not ordered (a retried event arrives after later ones): order by
`occurred_at`. `service.py` explains the outbox (how deliveries are created exactly once from
the conversation event log) and `worker.py` the sending.
"""
