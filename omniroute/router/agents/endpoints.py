"""Agents and their offers, as agent desktops and supervisors use them."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from omniroute.router.agents import service
from omniroute.router.agents.schemas import (
    AgentCreate,
    AgentRead,
    AgentUpdate,
    OfferRead,
    OffersPage,
)
from omniroute.router.dependencies import AgentOrSupervisor, RuntimeDep, Supervisor
from omniroute.router.models import Agent, Offer
from omniroute.router.offers.service import pending_offers
from omniroute.shared.auth import Principal, Role
from omniroute.shared.errors import Forbidden, NotFound

router = APIRouter(prefix="/v1/agents", tags=["agents"])

# Between wake-ups an offer made by another router replica is found by this re-check.
POLL_RECHECK_SECONDS = 1.0


def _ensure_may_act(principal: Principal, agent_id: uuid.UUID) -> None:
    if not principal.can_act_for(agent_id):
        raise NotFound("no such agent")  # not 403: another agent's id must reveal nothing


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an agent")
async def create_agent(body: AgentCreate, runtime: RuntimeDep, _: Supervisor) -> AgentRead:
    async with runtime.uow() as uow:
        agent = await service.create_agent(uow.session, **body.model_dump())
        uow.needs_dispatch = True
    return AgentRead.model_validate(agent)


@router.get("", summary="List agents")
async def list_agents(runtime: RuntimeDep, _: Supervisor) -> list[AgentRead]:
    async with runtime.sessions() as session:
        agents = (await session.scalars(select(Agent).order_by(Agent.name))).all()
    return [AgentRead.model_validate(agent) for agent in agents]


@router.get("/{agent_id}", summary="Read an agent")
async def get_agent(
    agent_id: uuid.UUID, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> AgentRead:
    _ensure_may_act(principal, agent_id)
    async with runtime.sessions() as session:
        agent = await service.get_agent(session, agent_id)
    return AgentRead.model_validate(agent)


@router.patch("/{agent_id}", summary="Change an agent's status, skills or capacity")
async def update_agent(
    agent_id: uuid.UUID, body: AgentUpdate, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> AgentRead:
    _ensure_may_act(principal, agent_id)
    changes = body.model_dump(exclude_unset=True)
    if principal.role is Role.AGENT and set(changes) - {"status"}:
        raise Forbidden("agents may change only their own status")
    async with runtime.uow() as uow:
        agent = await service.get_agent(uow.session, agent_id)
        uow.needs_dispatch = await service.update_agent(uow.session, agent, changes)
    return AgentRead.model_validate(agent)


@router.get(
    "/{agent_id}/offers",
    summary="Pending offers of an agent (long-poll)",
    description="With `wait`, answers as soon as an offer exists, or after `wait` seconds "
    "with an empty list. With `after` (the newest offer id the desktop already has), it waits "
    "for an offer newer than that one instead; the answer always lists every pending offer.",
)
async def poll_offers(
    agent_id: uuid.UUID,
    runtime: RuntimeDep,
    principal: AgentOrSupervisor,
    wait: float = Query(default=0, ge=0, le=300),
    after: uuid.UUID | None = Query(default=None),
) -> OffersPage:
    _ensure_may_act(principal, agent_id)
    deadline = time.monotonic() + min(wait, runtime.settings.long_poll_max_seconds)
    async with runtime.sessions() as session:
        await service.get_agent(session, agent_id)
        seen = await session.get(Offer, after) if after is not None else None
    # Offers of one dispatch pass share their creation time and commit together, so a desktop
    # that has one of them has them all: newer means created later.
    cutoff = seen.created_at if seen is not None and seen.agent_id == agent_id else None
    while True:
        async with runtime.sessions() as session:
            offers = await pending_offers(session, agent_id)
        remaining = deadline - time.monotonic()
        fresh = offers if cutoff is None else [o for o in offers if o.created_at > cutoff]
        if fresh or remaining <= 0:
            return OffersPage(offers=[OfferRead.model_validate(offer) for offer in offers])
        await runtime.notifier.wait(agent_id, min(remaining, POLL_RECHECK_SECONDS))
