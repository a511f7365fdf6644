"""SMTP ingress: mail delivered straight to us (an MX, or a provider forwarding by SMTP).

Runs on the gateway's own event loop and publishes through the same ContactPublisher as the HTTP
channels, so an SMTP message and the same message posted over HTTP become the same contact. The
SMTP reply carries the durability promise: 250 only once the contact is durable, 451 (try again
later) when the bus cannot take it, 552 when the message exceeds OMNIROUTE_MAX_EMAIL_BYTES
(aiosmtpd enforces it while the data streams in), 554 when it cannot be read at all.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from omniroute.gateway.channels.email import parse_email
from omniroute.gateway.ingest import ContactPublisher
from omniroute.shared.errors import AppError
from omniroute.shared.events import utcnow
from omniroute.shared.transport import BusUnavailable

log = structlog.get_logger(__name__)

OK = "250 2.0.0 OK: queued as {contact_id}"
TEMPORARY_FAILURE = "451 4.3.0 Requested action aborted: the message could not be stored, retry"
UNREADABLE = "554 5.6.0 Message rejected: {reason}"


class IngressHandler:
    """The aiosmtpd handler: every accepted DATA is one contact on contacts.inbound."""

    def __init__(self, publisher: ContactPublisher) -> None:
        self._publisher = publisher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not raw:
            return UNREADABLE.format(reason="empty message")
        received_at = utcnow()
        try:
            # Large MIME takes long enough to stall the loop; parse beside it.
            contact = await asyncio.to_thread(parse_email, raw, received_at=received_at)
        except AppError as exc:
            return UNREADABLE.format(reason=exc.message[:200])
        except Exception:
            log.exception("gateway.smtp.parse_failed")
            return UNREADABLE.format(reason="the message could not be parsed")
        try:
            [receipt] = await self._publisher.publish([contact])
        except BusUnavailable:
            log.warning("gateway.smtp.bus_unavailable")
            return TEMPORARY_FAILURE
        except Exception:
            # Whatever went wrong, the sender keeps the message and retries: nothing is lost.
            log.exception("gateway.smtp.publish_failed")
            return TEMPORARY_FAILURE
        log.info("gateway.smtp.accepted", contact_id=str(receipt.contact_id))
        return OK.format(contact_id=receipt.contact_id)


def smtp_factory(publisher: ContactPublisher, max_bytes: int, **options: Any) -> SMTP:
    """aiosmtpd's server; `tls_context` offers STARTTLS, `require_starttls` insists on it."""
    return SMTP(
        IngressHandler(publisher),
        data_size_limit=max_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
        ident="Omniroute ESMTP",
        **options,
    )


@asynccontextmanager
async def smtp_listener(
    publisher: ContactPublisher,
    *,
    host: str,
    port: int,
    max_bytes: int,
    tls_context: ssl.SSLContext | None = None,
    require_starttls: bool = False,
) -> AsyncIterator[asyncio.Server]:
    """Listen for SMTP on host:port for as long as the context is open (port 0: any free).

    With a TLS context, STARTTLS is offered (mail servers use it when offered); with
    `require_starttls`, a sender must start TLS before MAIL (530 otherwise).
    """
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: smtp_factory(
            publisher,
            max_bytes,
            loop=loop,
            tls_context=tls_context,
            require_starttls=require_starttls,
        ),
        host=host,
        port=port,
    )
    bound = server.sockets[0].getsockname()[1] if server.sockets else port
    log.info(
        "gateway.smtp.listening",
        host=host,
        port=bound,
        starttls="required" if require_starttls else "offered" if tls_context else "off",
    )
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
