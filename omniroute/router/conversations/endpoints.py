"""Conversations: read with messages and events, complete, transfer."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from omniroute.router.conversations import service
from omniroute.router.conversations.schemas import (
    ConversationDetail,
    ConversationRead,
    EventRead,
    MessageRead,
    TransferRequest,
)
from omniroute.router.dependencies import AgentOrSupervisor, RuntimeDep
from omniroute.router.models import Conversation, Queue
from omniroute.router.notifications.schemas import NotificationRead
from omniroute.router.notifications.service import notifications_of
from omniroute.router.queues.service import get_queue, get_queue_by_name
from omniroute.shared.errors import NotFound

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def _read(conversation: Conversation, queue: Queue | None) -> ConversationRead:
    read = ConversationRead.model_validate(conversation)
    return read.model_copy(update={"queue": queue.name if queue else None})


@router.get("/{conversation_id}", summary="A conversation with its messages and event log")
async def get_conversation(
    conversation_id: uuid.UUID, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> ConversationDetail:
    async with runtime.sessions() as session:
        conversation = await service.get_for(session, principal, conversation_id)
        messages = await service.messages_of(session, conversation.id)
        events = await service.events_of(session, conversation.id)
        notices = await notifications_of(session, conversation.id)
        queue = await session.get(Queue, conversation.queue_id) if conversation.queue_id else None
    base = _read(conversation, queue)
    return ConversationDetail(
        **base.model_dump(),
        classification=messages[-1].classification if messages else None,
        messages=[MessageRead.model_validate(message) for message in messages],
        events=[EventRead.model_validate(event) for event in events],
        notifications=[NotificationRead.model_validate(notice) for notice in notices],
    )


@router.post("/{conversation_id}/complete", summary="Complete a conversation")
async def complete_conversation(
    conversation_id: uuid.UUID, runtime: RuntimeDep, principal: AgentOrSupervisor
) -> ConversationRead:
    async with runtime.uow() as uow:
        conversation = await service.complete(uow, principal, conversation_id)
        queue = (
            await uow.session.get(Queue, conversation.queue_id) if conversation.queue_id else None
        )
    return _read(conversation, queue)


@router.post("/{conversation_id}/transfer", summary="Transfer a conversation to another queue")
async def transfer_conversation(
    conversation_id: uuid.UUID,
    body: TransferRequest,
    runtime: RuntimeDep,
    principal: AgentOrSupervisor,
) -> ConversationRead:
    async with runtime.uow() as uow:
        try:
            queue = await get_queue(uow.session, uuid.UUID(body.queue))
        except ValueError:
            queue = await get_queue_by_name(uow.session, body.queue)
        except NotFound:
            raise
        conversation = await service.transfer(uow, principal, conversation_id, queue)
    return _read(conversation, queue)
