"""The survey's answers come back here.

Authentication: an ingest key. The channel integration that delivered the survey (it received
the `notification.sent` event) relays the customer's reply, as it relays every inbound message;
customers never hold API credentials, so nothing customer-facing needs a token of its own.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from omniroute.router.dependencies import RuntimeDep
from omniroute.router.notifications import service
from omniroute.router.notifications.schemas import FeedbackCreate, FeedbackRead
from omniroute.shared.auth import Principal, Role, require_roles

router = APIRouter(prefix="/v1/conversations", tags=["feedback"])

Ingest = Annotated[Principal, require_roles(Role.INGEST)]


@router.post(
    "/{conversation_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    summary="The customer's survey answer (CSAT 1-5, NPS 0-10), relayed with an ingest key",
)
async def post_feedback(
    conversation_id: uuid.UUID,
    body: FeedbackCreate,
    runtime: RuntimeDep,
    _: Ingest,
    response: Response,
) -> FeedbackRead:
    async with runtime.uow() as uow:
        feedback, created = await service.record_feedback(
            uow, conversation_id, csat=body.csat, nps=body.nps, comment=body.comment
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return FeedbackRead.model_validate(feedback)
