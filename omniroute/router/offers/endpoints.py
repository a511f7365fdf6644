"""Accepting and declining offers."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from omniroute.router.agents.schemas import OfferRead
from omniroute.router.dependencies import AgentOrSupervisor, RuntimeDep
from omniroute.router.offers import service

router = APIRouter(prefix="/v1/offers", tags=["offers"])


@router.post("/{offer_id}/accept", summary="Accept an offer: the agent becomes responsible")
async def accept_offer(
    offer_id: uuid.UUID, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> OfferRead:
    async with runtime.uow() as uow:
        offer = await service.accept(uow, principal, offer_id)
    return OfferRead.model_validate(offer)


@router.post("/{offer_id}/decline", summary="Decline an offer: the work returns to its queue")
async def decline_offer(
    offer_id: uuid.UUID, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> OfferRead:
    async with runtime.uow() as uow:
        offer = await service.decline(uow, principal, offer_id)
    return OfferRead.model_validate(offer)
