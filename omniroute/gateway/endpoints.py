"""Ingestion HTTP API: the generic contacts endpoints and one route set per channel adapter.

Thin on purpose: read the raw body (signatures are computed over the exact bytes), let the
adapter authenticate and normalise, publish, answer with the deterministic ids. A 2xx is sent
only once the publisher reports every contact durable. Dependencies come from app.state:
`settings` (Settings), `publisher` (ContactPublisher) and `key_store` (KeyStore).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from omniroute.gateway.channels import AdapterRegistry, ChannelAdapter, default_registry
from omniroute.gateway.channels.base import RawDelivery, decode_json, validation_errors
from omniroute.gateway.channels.email import EmailAdapter
from omniroute.gateway.ingest import ContactPublisher, Receipt
from omniroute.gateway.routing import RequestOnlyRoute
from omniroute.gateway.schemas import (
    ContactBatchIn,
    ContactIn,
    ProblemOut,
    ReceiptOut,
    ReceiptsOut,
)
from omniroute.shared.auth import Role, authenticate
from omniroute.shared.errors import (
    PROBLEM_JSON,
    AppError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from omniroute.shared.events import InboundContact, utcnow
from omniroute.shared.settings import Settings

log = structlog.get_logger(__name__)

JSON = "application/json"
INLINE_PARSE_BYTES = 64 * 1024


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ProblemOut, "content": {PROBLEM_JSON: {}}, "description": description}
        for status, description in (
            (400, "Malformed body (bad JSON, invalid UTF-8, empty)"),
            (401, "Missing or invalid credentials or signature"),
            (403, "The key's role may not ingest, or the verify token does not match"),
            (413, "The body or the batch is too large"),
            (415, "Wrong Content-Type"),
            (422, "The body is well-formed but invalid"),
            (503, "The contact could not be made durable; retry after Retry-After seconds"),
        )
        if status in statuses
    }


def body_limits(settings: Settings, registry: AdapterRegistry | None = None) -> dict[str, int]:
    """Per-path body limits for BodyLimitMiddleware: e-mail channels take whole messages
    (OMNIROUTE_MAX_EMAIL_BYTES, 25 MiB by default); every other path keeps the API limit."""
    registry = registry if registry is not None else default_registry()
    limit = max(settings.gateway.max_email_bytes, settings.gateway.max_body_bytes)
    return {
        f"/v1/channels/{adapter.name}": limit
        for adapter in registry
        if isinstance(adapter, EmailAdapter)
    }


def gateway_router(registry: AdapterRegistry | None = None) -> APIRouter:
    """The ingestion routes: /v1/contacts, /v1/contacts/batch and /v1/channels/<name>."""
    registry = registry if registry is not None else default_registry()
    # Every endpoint here authenticates itself (or checks the provider's signature).
    router = APIRouter(tags=["ingestion"], route_class=RequestOnlyRoute)

    @router.post(
        "/v1/contacts",
        status_code=202,
        response_model=ReceiptOut,
        summary="Ingest one contact",
        description=(
            "Normalised contact from any integration. `external_id` is the idempotency key: "
            "posting the same message again returns the same `contact_id` and "
            "`conversation_id` and creates nothing new. Needs a bearer key with role ingest."
        ),
        responses=_problems(400, 401, 403, 413, 415, 422, 503),
        openapi_extra=_json_body(ContactIn),
    )
    async def post_contact(request: Request) -> Response:
        received_at = utcnow()
        await authenticate(request, Role.INGEST)
        _require_media_type(request, (JSON,))
        contact = parse_contact(await request.body())
        receipts = await _publisher(request).publish([contact.to_event(received_at)])
        return Response(receipts[0].as_json(), status_code=202, media_type=JSON)

    @router.post(
        "/v1/contacts/batch",
        status_code=202,
        response_model=ReceiptsOut,
        summary="Ingest a batch of contacts",
        description=(
            'Up to `max_batch` (default 500) contacts as `{"contacts": [...]}`, validated as a '
            "whole: one invalid contact refuses the batch. Receipts come back in the same order. "
            "Idempotent per `external_id`, so after a 503 the whole batch can be sent again."
        ),
        responses=_problems(400, 401, 403, 413, 415, 422, 503),
        openapi_extra=_json_body(ContactBatchIn),
    )
    async def post_batch(request: Request) -> JSONResponse:
        received_at = utcnow()
        await authenticate(request, Role.INGEST)
        _require_media_type(request, (JSON,))
        payload = decode_json(await request.body())
        limit = _settings(request).gateway.max_batch
        items = payload.get("contacts") if isinstance(payload, dict) else None
        if isinstance(items, list) and len(items) > limit:
            raise PayloadTooLarge(f"a batch holds at most {limit} contacts")
        try:
            batch = ContactBatchIn.model_validate(payload)
        except ValidationError as exc:
            raise Unprocessable("the batch is invalid", errors=validation_errors(exc)) from exc
        events = [contact.to_event(received_at) for contact in batch.contacts]
        receipts = await _publisher(request).publish(events)
        return JSONResponse(_receipts(receipts), status_code=202)

    for adapter in registry:
        _add_channel_routes(router, adapter)
    return router


def parse_contact(body: bytes) -> ContactIn:
    """The body as a contact, parsed and validated in one pass by pydantic.

    Only a refused body takes the slower way that tells a malformed body (400: empty, not
    UTF-8, not JSON) from an invalid contact (422), and accepts a UTF-8 BOM.
    """
    try:
        return ContactIn.model_validate_json(body)
    except ValidationError:
        pass
    payload = decode_json(body)
    try:
        return ContactIn.model_validate(payload)
    except ValidationError as exc:
        raise Unprocessable("the contact is invalid", errors=validation_errors(exc)) from exc


def _add_channel_routes(router: APIRouter, adapter: ChannelAdapter) -> None:
    path = f"/v1/channels/{adapter.name}"
    signed = adapter.authentication == "signature"
    # Providers treat any 2xx as delivered; Meta and its peers expect 200 from webhooks.
    success = 200 if signed else 202
    auth_note = (
        "Authenticated by the provider's signature, not by a bearer key."
        if signed
        else "Needs a bearer key with role ingest."
    )

    async def receive(request: Request) -> Response:
        if not signed:
            await authenticate(request, Role.INGEST)
        settings = _settings(request)
        delivery = await _delivery(request, settings)
        _verify(adapter, delivery, settings)
        _require_media_type(request, adapter.content_types)
        contacts = await _parse(adapter, delivery)
        receipts = await _publisher(request).publish(contacts)
        custom = adapter.reply(contacts)
        if custom is not None:
            return custom
        if not signed and len(receipts) == 1:
            return JSONResponse(receipts[0].as_dict(), status_code=success)
        return JSONResponse(_receipts(receipts), status_code=success)

    router.add_api_route(
        path,
        receive,
        methods=["POST"],
        status_code=success,
        name=f"channel_{adapter.name}",
        summary=adapter.summary,
        description=(
            f"Accepts {', '.join(adapter.content_types)}. {auth_note} Answers with the receipt "
            '(`contact_id`, `conversation_id`), or `{"contacts": [...]}` when a delivery holds '
            "zero or several messages. Re-delivery of the same provider message returns the "
            "same ids."
        ),
        responses=_problems(400, 401, 403, 413, 415, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    media: {"schema": _body_schema(adapter.body_model, media)}
                    for media in adapter.content_types
                },
            }
        },
    )
    if signed:
        router.add_api_route(
            path,
            _handshake_endpoint(adapter),
            methods=["GET"],
            name=f"channel_{adapter.name}_handshake",
            summary=f"{adapter.summary}: subscription handshake",
            description="Answers the provider's verification challenge (e.g. Meta's hub.*).",
            responses=_problems(400, 403),
            response_class=Response,
        )


def _handshake_endpoint(adapter: ChannelAdapter) -> Callable[[Request], Awaitable[Response]]:
    async def handshake(request: Request) -> Response:
        settings = _settings(request)
        delivery = await _delivery(request, settings)
        try:
            response = adapter.handshake(delivery, settings)
        except AppError:
            raise
        except Exception as exc:
            log.warning("gateway.channel.handshake_failed", channel=adapter.name)
            raise BadRequest("the handshake request could not be answered") from exc
        if response is None:
            raise NotFound("this channel has no handshake")
        return response

    return handshake


def _verify(adapter: ChannelAdapter, delivery: RawDelivery, settings: Settings) -> None:
    """The adapter's authentication; a hostile body breaking it is a 401, never a 500."""
    try:
        adapter.verify(delivery, settings)
    except AppError:
        raise
    except Exception as exc:
        log.warning("gateway.channel.verify_failed", channel=adapter.name, error=type(exc).__name__)
        raise Unauthorized("the delivery could not be authenticated") from exc


async def _parse(adapter: ChannelAdapter, delivery: RawDelivery) -> list[InboundContact]:
    """The adapter's contacts; an adapter bug on hostile input is a 422, never a 500."""
    try:
        if len(delivery.body) > INLINE_PARSE_BYTES:
            # A large MIME message takes long enough to stall every other request on the loop.
            return await run_in_threadpool(adapter.parse, delivery)
        return adapter.parse(delivery)
    except AppError:
        raise
    except ValidationError as exc:
        raise Unprocessable(
            "the delivery does not make a valid contact", errors=validation_errors(exc)
        ) from exc
    except Exception as exc:
        log.exception("gateway.channel.parse_failed", channel=adapter.name)
        raise Unprocessable(f"the {adapter.name} delivery could not be parsed") from exc


async def _delivery(request: Request, settings: Settings) -> RawDelivery:
    received_at = utcnow()
    body = await request.body()
    url = str(request.url)
    public = settings.gateway.public_url
    if public:
        # Behind a proxy the URL we see is not the one the provider signed.
        url = (
            public.rstrip("/")
            + request.url.path
            + (f"?{request.url.query}" if request.url.query else "")
        )
    return RawDelivery(
        body=body,
        content_type=request.headers.get("content-type", ""),
        received_at=received_at,
        headers={name.lower(): value for name, value in request.headers.items()},
        query=dict(request.query_params),
        url=url,
    )


def _require_media_type(request: Request, accepted: tuple[str, ...]) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in accepted:
        raise UnsupportedMediaType(
            f"Content-Type must be {' or '.join(accepted)}", accepted=list(accepted)
        )


def _receipts(receipts: list[Receipt]) -> dict[str, list[dict[str, str]]]:
    return {"contacts": [receipt.as_dict() for receipt in receipts]}


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The body for /docs: the route reads the raw body itself, so FastAPI cannot infer it."""
    return {"requestBody": {"required": True, "content": {JSON: {"schema": _inline_schema(model)}}}}


def _body_schema(model: type[BaseModel] | None, media_type: str) -> dict[str, Any]:
    if model is not None:
        return _inline_schema(model)
    if media_type == JSON:
        return {"type": "object"}
    return {"type": "string", "format": "binary"}


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with nested models inlined.

    "#/$defs/..." references would resolve against the OpenAPI document, not the schema.
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _publisher(request: Request) -> ContactPublisher:
    publisher: ContactPublisher = request.app.state.publisher
    return publisher
