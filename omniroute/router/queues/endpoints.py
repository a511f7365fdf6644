"""Queues and their live statistics."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from omniroute.router.dependencies import AgentOrSupervisor, RuntimeDep, Supervisor
from omniroute.router.notifications.service import FeedbackStats, feedback_stats
from omniroute.router.queues import service
from omniroute.router.queues.schemas import (
    OverallStatsRead,
    QueueCreate,
    QueueRead,
    QueueStatsRead,
)

router = APIRouter(prefix="/v1/queues", tags=["queues"])
stats_router = APIRouter(prefix="/v1/stats", tags=["queues"])


def _satisfaction(stats: FeedbackStats) -> dict[str, Any]:
    return {
        "survey_responses": stats.responses,
        "csat_average": stats.csat_average,
        "nps_score": stats.nps_score,
    }


@router.get("", summary="List queues")
async def list_queues(runtime: RuntimeDep, _: AgentOrSupervisor) -> list[QueueRead]:
    async with runtime.sessions() as session:
        queues = await service.list_queues(session)
    return [QueueRead.model_validate(queue) for queue in queues]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a queue")
async def create_queue(body: QueueCreate, runtime: RuntimeDep, _: Supervisor) -> QueueRead:
    async with runtime.uow() as uow:
        queue = await service.create_queue(
            uow.session, body.name, body.description, body.required_skills
        )
    return QueueRead.model_validate(queue)


@router.get("/{queue_id}/stats", summary="Waiting, longest wait and agents available")
async def queue_stats(
    queue_id: uuid.UUID, runtime: RuntimeDep, _: AgentOrSupervisor
) -> QueueStatsRead:
    async with runtime.sessions() as session:
        queue = await service.get_queue(session, queue_id)
        stats = await service.queue_stats(session, queue)
        satisfaction = await feedback_stats(session, queue.id)
    return QueueStatsRead(
        queue_id=queue.id,
        name=queue.name,
        waiting=stats.waiting,
        offered=stats.offered,
        assigned=stats.assigned,
        longest_wait_seconds=stats.longest_wait_seconds,
        agents_available=stats.agents_available,
        **_satisfaction(satisfaction),
    )


@stats_router.get("", summary="Across all queues: conversations, SLA, notices, satisfaction")
async def overall_stats(runtime: RuntimeDep, _: Supervisor) -> OverallStatsRead:
    async with runtime.sessions() as session:
        stats = await service.overall_stats(session)
        satisfaction = await feedback_stats(session)
    return OverallStatsRead(
        conversations=stats.conversations,
        sla_warnings=stats.sla_warnings,
        sla_breaches=stats.sla_breaches,
        notifications=stats.notifications,
        **_satisfaction(satisfaction),
    )
