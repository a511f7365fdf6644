"""Resolving who wrote: every identity the channel gives points at one customer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.models import Customer, CustomerIdentity
from omniroute.shared.events import CustomerRef
from omniroute.shared.identity import normalise_email, normalise_handle, normalise_phone


def identities_of(ref: CustomerRef, channel: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if email := normalise_email(ref.email):
        found.append(("email", email))
    if phone := normalise_phone(ref.phone):
        found.append(("phone", phone))
    if handle := normalise_handle(ref.handle):
        found.append((f"handle:{channel}", handle))
    for provider, value in sorted(ref.provider_ids.items()):
        found.append((f"provider:{provider}", value))
    return found


async def resolve_customer(
    session: AsyncSession, ref: CustomerRef, channel: str
) -> Customer | None:
    """Find the customer by any identity, or create one; learn the identities not yet known."""
    identities = identities_of(ref, channel)
    if not identities:
        return None
    customer: Customer | None = None
    known: set[tuple[str, str]] = set()
    for kind, value in identities:
        row = await session.scalar(
            select(CustomerIdentity).where(
                CustomerIdentity.kind == kind, CustomerIdentity.value == value
            )
        )
        if row is not None:
            known.add((kind, value))
            if customer is None:
                customer = await session.get(Customer, row.customer_id)
    if customer is None:
        customer = Customer(
            name=ref.name,
            email=normalise_email(ref.email),
            phone=normalise_phone(ref.phone),
            handle=ref.handle,
            language=ref.language,
            tier=ref.tier,
        )
        session.add(customer)
        await session.flush()
    else:
        customer.name = customer.name or ref.name
        customer.email = customer.email or normalise_email(ref.email)
        customer.phone = customer.phone or normalise_phone(ref.phone)
        customer.handle = customer.handle or ref.handle
        customer.language = customer.language or ref.language
        customer.tier = ref.tier or customer.tier
    for kind, value in identities:
        if (kind, value) not in known:
            session.add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value))
    await session.flush()
    return customer
