"""Agents: status, skills and capacity per channel."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.models import Agent, AgentStatus
from omniroute.shared.errors import NotFound
from omniroute.shared.events import utcnow


async def create_agent(
    session: AsyncSession,
    *,
    name: str,
    email: str | None = None,
    status: AgentStatus = AgentStatus.OFFLINE,
    skills: dict[str, int] | None = None,
    capacity: dict[str, int] | None = None,
) -> Agent:
    agent = Agent(
        name=name,
        email=email,
        status=status.value,
        skills=dict(skills or {}),
        capacity=dict(capacity or {"default": 1}),
        idle_since=utcnow(),
    )
    session.add(agent)
    await session.flush()
    return agent


async def get_agent(session: AsyncSession, agent_id: uuid.UUID) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("no such agent")
    return agent


async def update_agent(session: AsyncSession, agent: Agent, changes: dict[str, Any]) -> bool:
    """Apply changes; returns whether the agent may now take more work (dispatch needed)."""
    more_work = False
    if "status" in changes and changes["status"] is not None:
        status = AgentStatus(changes["status"])
        if status.value != agent.status:
            agent.status = status.value
            if status is AgentStatus.AVAILABLE:
                agent.idle_since = utcnow()
                more_work = True
    for field in ("name", "email"):
        if changes.get(field) is not None:
            setattr(agent, field, changes[field])
    if changes.get("skills") is not None:
        agent.skills = dict(changes["skills"])
        more_work = True
    if changes.get("capacity") is not None:
        agent.capacity = dict(changes["capacity"])
        more_work = True
    agent.version += 1
    await session.flush()
    return more_work and agent.status == AgentStatus.AVAILABLE.value
