"""Outbound webhook endpoints, their deliveries and attempts, and replays of dead letters."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from omniroute.router.dependencies import Admin, RuntimeDep, Supervisor
from omniroute.router.webhooks import service
from omniroute.router.webhooks.egress import private_host
from omniroute.router.webhooks.models import DeliveryStatus, WebhookEndpoint
from omniroute.router.webhooks.schemas import (
    AttemptRead,
    DeliveriesPage,
    DeliveryDetail,
    DeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)
from omniroute.router.webhooks.sealing import SecretSealer
from omniroute.router.webhooks.worker import kick
from omniroute.shared.errors import Unprocessable
from omniroute.shared.settings import RouterSettings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _refuse_private(settings: RouterSettings, url: str) -> None:
    reason = None if settings.webhook_allow_private_networks else private_host(url)
    if reason is not None:
        raise Unprocessable(
            f"{reason}: deliveries go to public addresses only "
            "(OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows private networks)"
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook endpoint",
    description="Routing events are POSTed to `url`, signed with the Standard Webhooks scheme. "
    "The answer carries the signing secret; it is not shown again.",
)
async def create_endpoint(
    body: WebhookEndpointCreate, runtime: RuntimeDep, _: Admin
) -> WebhookEndpointCreated:
    _refuse_private(runtime.settings, str(body.url))
    async with runtime.uow() as uow:
        endpoint, secret = await service.create_endpoint(
            uow.session,
            url=str(body.url),
            event_types=[t.value for t in body.event_types] if body.event_types else None,
            description=body.description,
            sealer=SecretSealer(runtime.settings.secrets_key),
        )
    return _with_secret(endpoint, secret)


@router.get("", summary="List webhook endpoints")
async def list_endpoints(runtime: RuntimeDep, _: Supervisor) -> list[WebhookEndpointRead]:
    async with runtime.sessions() as session:
        endpoints = await service.list_endpoints(session)
    return [WebhookEndpointRead.model_validate(endpoint) for endpoint in endpoints]


@router.get("/deliveries/{delivery_id}", summary="A delivery with every attempt")
async def get_delivery(
    delivery_id: uuid.UUID, runtime: RuntimeDep, _: Supervisor
) -> DeliveryDetail:
    async with runtime.sessions() as session:
        delivery = await service.get_delivery(session, delivery_id)
        payload = await service.delivery_payload(session, delivery)
        attempts = await service.delivery_attempts(session, delivery_id)
    return DeliveryDetail(
        **DeliveryRead.model_validate(delivery).model_dump(),
        payload=payload,
        attempts=[AttemptRead.model_validate(attempt) for attempt in attempts],
    )


@router.post(
    "/deliveries/{delivery_id}/replay",
    summary="Replay a dead-lettered delivery",
    description="The delivery is retried now, with a fresh retry schedule; its attempts are kept.",
)
async def replay_delivery(delivery_id: uuid.UUID, runtime: RuntimeDep, _: Admin) -> DeliveryRead:
    async with runtime.uow() as uow:
        delivery = await service.replay_delivery(uow.session, delivery_id)
    kick(runtime)
    return DeliveryRead.model_validate(delivery)


@router.get("/{endpoint_id}", summary="Read a webhook endpoint")
async def get_endpoint(
    endpoint_id: uuid.UUID, runtime: RuntimeDep, _: Supervisor
) -> WebhookEndpointRead:
    async with runtime.sessions() as session:
        endpoint = await service.get_endpoint(session, endpoint_id)
    return WebhookEndpointRead.model_validate(endpoint)


@router.patch(
    "/{endpoint_id}",
    summary="Enable or disable an endpoint, change its URL, filter or description",
    description="A new filter, or re-enabling, applies to events from now on; "
    "`event_types: null` means every type.",
)
async def update_endpoint(
    endpoint_id: uuid.UUID, body: WebhookEndpointUpdate, runtime: RuntimeDep, _: Admin
) -> WebhookEndpointRead:
    changes = body.model_dump(mode="json", exclude_unset=True)
    if "url" in changes and changes["url"] is None:
        changes.pop("url")
    if "url" in changes:
        _refuse_private(runtime.settings, changes["url"])
    async with runtime.uow() as uow:
        endpoint = await service.get_endpoint(uow.session, endpoint_id)
        await service.update_endpoint(uow.session, endpoint, changes)
    return WebhookEndpointRead.model_validate(endpoint)


@router.post(
    "/{endpoint_id}/secret",
    summary="Rotate the signing secret",
    description="Answers with the new secret, shown only this once; every request from now on, "
    "retries included, is signed with it.",
)
async def rotate_secret(
    endpoint_id: uuid.UUID, runtime: RuntimeDep, _: Admin
) -> WebhookEndpointCreated:
    async with runtime.uow() as uow:
        endpoint = await service.get_endpoint(uow.session, endpoint_id)
        secret = await service.rotate_secret(
            uow.session, endpoint, SecretSealer(runtime.settings.secrets_key)
        )
    return _with_secret(endpoint, secret)


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> WebhookEndpointCreated:
    """The endpoint as read, with the secret shown this once (the stored one may be sealed)."""
    read = WebhookEndpointRead.model_validate(endpoint)
    return WebhookEndpointCreated(**read.model_dump(), secret=secret)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an endpoint with its deliveries",
)
async def delete_endpoint(endpoint_id: uuid.UUID, runtime: RuntimeDep, _: Admin) -> Response:
    async with runtime.uow() as uow:
        endpoint = await service.get_endpoint(uow.session, endpoint_id)
        await service.delete_endpoint(uow.session, endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{endpoint_id}/deliveries", summary="An endpoint's deliveries, newest first")
async def list_deliveries(
    endpoint_id: uuid.UUID,
    runtime: RuntimeDep,
    _: Supervisor,
    delivery_status: DeliveryStatus | None = Query(default=None, alias="status"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
) -> DeliveriesPage:
    async with runtime.sessions() as session:
        await service.get_endpoint(session, endpoint_id)
        deliveries = await service.list_deliveries(
            session, endpoint_id, status=delivery_status, limit=limit, offset=offset
        )
    return DeliveriesPage(
        deliveries=[DeliveryRead.model_validate(delivery) for delivery in deliveries]
    )
