"""Who wrote: every identity a channel gives points at one customer; merging two customers found
to be one person; reading a customer with their history on every channel."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.customers.models import CustomerMerge
from omniroute.router.models import Conversation, ConversationStatus, Customer, CustomerIdentity
from omniroute.router.notifications.models import Feedback, Notification
from omniroute.router.uow import UnitOfWork
from omniroute.shared.auth import Principal, Role
from omniroute.shared.errors import BadRequest, Conflict, NotFound
from omniroute.shared.events import CustomerRef, RoutingEventType, utcnow
from omniroute.shared.identity import normalise_email, normalise_handle, normalise_phone

log = structlog.get_logger(__name__)

# Provider ids that are international phone numbers without the "+" (WhatsApp's wa_id).
PHONE_PROVIDER_IDS = frozenset({"wa_id"})
PROFILE_FIELDS = ("name", "email", "phone", "handle", "language", "tier", "timezone")


def identities_of(ref: CustomerRef, channel: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if email := normalise_email(ref.email):
        found.append(("email", email))
    phones = [normalise_phone(ref.phone)] + [
        normalise_phone(value, international=True)
        for kind, value in sorted(ref.provider_ids.items())
        if kind in PHONE_PROVIDER_IDS
    ]
    for phone in phones:
        if phone and ("phone", phone) not in found:
            found.append(("phone", phone))
    if handle := normalise_handle(ref.handle):
        found.append((f"handle:{channel}", handle))
    for provider, value in sorted(ref.provider_ids.items()):
        found.append((f"provider:{provider}", value))
    return found


def _richness(customer: Customer) -> int:
    return sum(getattr(customer, name) is not None for name in PROFILE_FIELDS)


def _learn(customer: Customer, ref: CustomerRef, phone: str | None) -> None:
    customer.name = customer.name or ref.name
    customer.email = customer.email or normalise_email(ref.email)
    customer.phone = customer.phone or phone
    customer.handle = customer.handle or ref.handle
    customer.language = customer.language or ref.language
    customer.tier = ref.tier or customer.tier


@dataclass
class IdentityBook:
    """Who owns which identity, as far as a batch knows: looked up once for all its contacts,
    then kept current as it creates customers. New rows wait for `write_new`."""

    looked_up: set[tuple[str, str]]
    owners: dict[tuple[str, str], uuid.UUID]
    # Holding the rows keeps them in the session's (weak) identity map.
    customers: dict[uuid.UUID, Customer]
    new_identities: list[dict[str, object]] = field(default_factory=list)
    merged: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # merged id -> survivor

    def survivor(self, customer_id: uuid.UUID | None) -> uuid.UUID | None:
        """Who a customer id of this batch stands for now (merges may have followed it)."""
        while customer_id in self.merged:
            customer_id = self.merged[customer_id]
        return customer_id

    @classmethod
    async def load(cls, session: AsyncSession, pairs: Iterable[tuple[str, str]]) -> IdentityBook:
        wanted = set(pairs)
        owners: dict[tuple[str, str], uuid.UUID] = {}
        customers: dict[uuid.UUID, Customer] = {}
        if wanted:
            rows = await session.execute(
                select(
                    CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id
                ).where(tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(wanted))
            )
            owners = {(kind, value): customer_id for kind, value, customer_id in rows}
        if owners:
            found = await session.scalars(
                select(Customer).where(Customer.id.in_(set(owners.values())))
            )
            customers = {customer.id: customer for customer in found}
        return cls(looked_up=wanted, owners=owners, customers=customers)

    async def write_new(self, session: AsyncSession) -> None:
        """New customers first (they are in the session), then their identities in one INSERT."""
        await session.flush()
        if self.new_identities:
            rows, self.new_identities = self.new_identities, []
            await session.execute(insert(CustomerIdentity), rows)


async def _owners(
    session: AsyncSession, identities: list[tuple[str, str]], book: IdentityBook | None
) -> tuple[list[uuid.UUID], set[tuple[str, str]]]:
    """The ids of the customers who own any of the identities, and which identities are known."""
    if book is not None and book.looked_up.issuperset(identities):
        known = {pair for pair in identities if pair in book.owners}
        return list(dict.fromkeys(book.owners[pair] for pair in identities if pair in known)), known
    rows: list[CustomerIdentity] = []
    for kind, value in identities:
        row = await session.scalar(
            select(CustomerIdentity).where(
                CustomerIdentity.kind == kind, CustomerIdentity.value == value
            )
        )
        if row is not None:
            rows.append(row)
    return list(dict.fromkeys(row.customer_id for row in rows)), {
        (row.kind, row.value) for row in rows
    }


async def resolve_customer(
    uow: UnitOfWork, ref: CustomerRef, channel: str, book: IdentityBook | None = None
) -> Customer | None:
    """Find the customer by any identity, or create one; learn the identities not yet known.

    When one contact carries identities of two known customers (an e-mail and a phone number
    recorded separately), it proves they are one person: they are merged into the oldest.
    With a `book` (a batch), lookups come from it and new rows wait for `book.write_new`.
    """
    session = uow.session
    identities = identities_of(ref, channel)
    if not identities:
        return None
    phone = next((value for kind, value in identities if kind == "phone"), None)
    owner_ids, known = await _owners(session, identities, book)
    owners: list[Customer] = []
    for customer_id in owner_ids:
        owner = book.customers.get(customer_id) if book is not None else None
        owner = owner or await session.get(Customer, customer_id)
        if owner is not None:
            owners.append(owner)
    customer: Customer | None = None
    if owners:
        owners.sort(key=lambda c: (c.created_at, str(c.id)))
        customer = owners[0]
        if len(owners) > 1:
            if book is not None:
                await book.write_new(session)  # the merge reads and moves identity rows
            for other in owners[1:]:
                await merge_customers(
                    uow, customer, other, actor="system", reason="shared identity"
                )
                if book is not None:
                    book.merged[other.id] = customer.id
                    book.owners.update(
                        {
                            pair: customer.id
                            for pair, owner in book.owners.items()
                            if owner == other.id
                        }
                    )
        _learn(customer, ref, phone)
    else:
        customer = Customer(
            id=uuid.uuid4(),
            name=ref.name,
            email=normalise_email(ref.email),
            phone=phone,
            handle=ref.handle,
            language=ref.language,
            tier=ref.tier,
            consent={},
            created_at=utcnow(),
        )
        session.add(customer)
        if book is not None:
            book.customers[customer.id] = customer
        else:
            await session.flush()  # before its identities: the ORM does not order them
    for kind, value in identities:
        if (kind, value) not in known:
            if book is not None:
                book.new_identities.append(
                    {"customer_id": customer.id, "kind": kind, "value": value}
                )
                book.owners[(kind, value)] = customer.id
                book.looked_up.add((kind, value))
            else:
                session.add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value))
            known.add((kind, value))
    if book is None:
        await session.flush()
    return customer


async def merge_customers(
    uow: UnitOfWork,
    keep: Customer,
    other: Customer,
    *,
    actor: str,
    reason: str = "supervisor",
) -> CustomerMerge:
    """Fold `other` into `keep`: identities, conversations and answers move; the richer profile
    wins field by field; a withdrawn consent stays withdrawn; `other` is deleted."""
    if keep.id == other.id:
        raise BadRequest("a customer cannot be merged with itself")
    if keep.erased_at is not None or other.erased_at is not None:
        raise Conflict("an erased customer cannot be merged")
    session = uow.session
    richer, poorer = (keep, other) if _richness(keep) >= _richness(other) else (other, keep)
    profile = {
        name: getattr(richer, name) if getattr(richer, name) is not None else getattr(poorer, name)
        for name in PROFILE_FIELDS
    }
    consent = dict(poorer.consent or {})
    for key, given in (richer.consent or {}).items():
        consent[key] = bool(given) and consent.get(key, True) is not False
    for key, given in (poorer.consent or {}).items():
        if given is False:
            consent[key] = False
    moved_identities = await session.execute(
        update(CustomerIdentity)
        .where(CustomerIdentity.customer_id == other.id)
        .values(customer_id=keep.id)
        .execution_options(synchronize_session=False)
    )
    moved = list(
        await session.scalars(select(Conversation.id).where(Conversation.customer_id == other.id))
    )
    await session.execute(
        update(Conversation)
        .where(Conversation.customer_id == other.id)
        .values(customer_id=keep.id)
        .execution_options(synchronize_session=False)
    )
    for model in (Notification, Feedback):
        await session.execute(
            update(model)
            .where(model.customer_id == other.id)
            .values(customer_id=keep.id)
            .execution_options(synchronize_session=False)
        )
    # Identities are unique, so `other`'s values must leave it before `keep` takes them.
    await session.flush()
    await session.delete(other)
    await session.flush()
    for name, value in profile.items():
        setattr(keep, name, value)
    keep.consent = consent
    record = CustomerMerge(
        customer_id=keep.id,
        merged_id=other.id,
        actor=actor,
        reason=reason,
        identities_moved=int(moved_identities.rowcount or 0),  # type: ignore[attr-defined]
        conversations_moved=len(moved),
    )
    session.add(record)
    for conversation_id in moved:
        uow.record(
            conversation_id,
            RoutingEventType.CUSTOMER_MERGED,
            {"customer_id": str(keep.id), "merged_id": str(other.id), "reason": reason},
            actor=actor,
        )
    await session.flush()
    log.info(
        "router.customer.merged",
        customer_id=str(keep.id),
        merged_id=str(other.id),
        reason=reason,
        conversations=len(moved),
    )
    return record


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.erased_at is not None:
        raise NotFound("no such customer")
    return customer


async def readable_customer(
    session: AsyncSession, principal: Principal, customer_id: uuid.UUID
) -> Customer:
    """Supervisors read any customer; an agent only the customer of a conversation it holds."""
    customer = await get_customer(session, customer_id)
    if principal.role in (Role.SUPERVISOR, Role.ADMIN):
        return customer
    if principal.role is Role.AGENT and principal.agent_id is not None:
        held = await session.scalar(
            select(Conversation.id)
            .where(
                Conversation.customer_id == customer.id,
                Conversation.agent_id == principal.agent_id,
                Conversation.status == ConversationStatus.ASSIGNED.value,
            )
            .limit(1)
        )
        if held is not None:
            return customer
    raise NotFound("no such customer")


async def identities_for(session: AsyncSession, customer_id: uuid.UUID) -> list[CustomerIdentity]:
    rows = await session.scalars(
        select(CustomerIdentity)
        .where(CustomerIdentity.customer_id == customer_id)
        .order_by(CustomerIdentity.kind, CustomerIdentity.value)
    )
    return list(rows.all())


async def history_of(session: AsyncSession, customer_id: uuid.UUID) -> list[Conversation]:
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.customer_id == customer_id)
        .order_by(Conversation.first_received_at.desc())
    )
    return list(rows.all())


def lookup_keys(
    *, email: str | None, phone: str | None, handle: str | None, channel: str | None
) -> list[tuple[str | None, str]]:
    """The identity (kind, value) pairs a query names, normalised as ingestion does.

    A handle without a channel matches that handle on every channel (kind None)."""
    given = [value for value in (email, phone, handle) if value]
    if len(given) != 1:
        raise BadRequest("give exactly one of email, phone or handle")
    if email:
        value = normalise_email(email)
        if value is None:
            raise BadRequest("not an e-mail address")
        return [("email", value)]
    if phone:
        number = normalise_phone(phone)
        if number is None:
            raise BadRequest("not a phone number")
        return [("phone", number)]
    name = normalise_handle(handle)
    if name is None:
        raise BadRequest("not a handle")
    return [(f"handle:{channel}" if channel else None, name)]


async def find_customers(
    session: AsyncSession, keys: Iterable[tuple[str | None, str]]
) -> list[Customer]:
    found: dict[uuid.UUID, Customer] = {}
    for kind, value in keys:
        query = select(CustomerIdentity.customer_id).where(CustomerIdentity.value == value)
        query = (
            query.where(CustomerIdentity.kind == kind)
            if kind
            else query.where(CustomerIdentity.kind.like("handle:%"))
        )
        for customer_id in (await session.scalars(query)).all():
            customer = await session.get(Customer, customer_id)
            if customer is not None and customer.erased_at is None:
                found[customer.id] = customer
    return sorted(found.values(), key=lambda c: c.created_at)
