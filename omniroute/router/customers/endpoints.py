"""Customers: find, read with their history on every channel, update, merge, erase."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query

from omniroute.router.customers import erasure, service
from omniroute.router.customers.schemas import (
    ConversationSummary,
    CustomerDetail,
    CustomerRead,
    CustomerUpdate,
    ErasureRead,
    IdentityRead,
    MergeRead,
    MergeRequest,
)
from omniroute.router.dependencies import AgentOrSupervisor, RuntimeDep, Supervisor
from omniroute.router.models import Customer
from omniroute.shared.auth import Principal
from omniroute.shared.errors import BadRequest, NotFound

router = APIRouter(prefix="/v1/customers", tags=["customers"])


def _actor(principal: Principal) -> str:
    if principal.key_id is not None:
        return f"{principal.role.value}:{principal.key_id}"
    return principal.role.value


async def _detail(runtime: RuntimeDep, customer: Customer) -> CustomerDetail:
    async with runtime.sessions() as session:
        identities = await service.identities_for(session, customer.id)
        history = await service.history_of(session, customer.id)
    return CustomerDetail(
        **CustomerRead.model_validate(customer).model_dump(),
        identities=[IdentityRead.model_validate(identity) for identity in identities],
        conversations=[ConversationSummary.model_validate(c) for c in history],
    )


@router.get("", summary="Find customers by e-mail, phone or social handle (normalised)")
async def find_customers(
    runtime: RuntimeDep,
    principal: AgentOrSupervisor,
    email: str | None = Query(default=None, max_length=512),
    phone: str | None = Query(default=None, max_length=64),
    handle: str | None = Query(default=None, max_length=512),
    channel: str | None = Query(default=None, max_length=32, description="Narrows a handle"),
) -> list[CustomerRead]:
    keys = service.lookup_keys(email=email, phone=phone, handle=handle, channel=channel)
    async with runtime.sessions() as session:
        found = await service.find_customers(session, keys)
        readable: list[Customer] = []
        for customer in found:
            try:
                readable.append(await service.readable_customer(session, principal, customer.id))
            except NotFound:
                continue
    return [CustomerRead.model_validate(customer) for customer in readable]


@router.get("/{customer_id}", summary="A customer's profile and conversations on every channel")
async def get_customer(
    customer_id: uuid.UUID, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> CustomerDetail:
    async with runtime.sessions() as session:
        customer = await service.readable_customer(session, principal, customer_id)
    return await _detail(runtime, customer)


@router.patch("/{customer_id}", summary="Update a customer's profile and consent")
async def update_customer(
    customer_id: uuid.UUID, body: CustomerUpdate, runtime: RuntimeDep, _: Supervisor
) -> CustomerDetail:
    if body.timezone is not None:
        try:
            ZoneInfo(body.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadRequest(f"unknown time zone {body.timezone!r}") from exc
    async with runtime.uow() as uow:
        customer = await service.get_customer(uow.session, customer_id)
        for name in ("name", "language", "tier", "timezone"):
            value = getattr(body, name)
            if value is not None:
                setattr(customer, name, value)
        if body.consent is not None:
            customer.consent = {**(customer.consent or {}), **body.consent}
        await uow.session.flush()
    return await _detail(runtime, customer)


@router.post("/{customer_id}/merge", summary="Merge another customer into this one")
async def merge_customer(
    customer_id: uuid.UUID, body: MergeRequest, runtime: RuntimeDep, principal: Supervisor
) -> MergeRead:
    async with runtime.uow() as uow:
        keep = await service.get_customer(uow.session, customer_id)
        other = await service.get_customer(uow.session, body.other_id)
        record = await service.merge_customers(uow, keep, other, actor=_actor(principal))
    return MergeRead.model_validate(record)


@router.delete("/{customer_id}", summary="Erase a customer's personal data (GDPR)")
async def erase_customer(
    customer_id: uuid.UUID, runtime: RuntimeDep, principal: Supervisor
) -> ErasureRead:
    async with runtime.uow() as uow:
        record = await erasure.erase_customer(uow, customer_id, actor=_actor(principal))
    return ErasureRead.model_validate(record)
