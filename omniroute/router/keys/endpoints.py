"""Creating API keys through the API (the CLI does the same with `omniroute keys create`)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from omniroute.router.agents.service import get_agent
from omniroute.router.dependencies import Admin, RuntimeDep
from omniroute.shared.auth import Role, create_key

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    agent_id: uuid.UUID | None = None
    name: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _agent_keys_are_bound(self) -> KeyCreate:
        if (self.role is Role.AGENT) != (self.agent_id is not None):
            raise ValueError("agent_id is required for, and only for, role agent")
        return self


class KeyCreated(BaseModel):
    id: uuid.UUID
    role: Role
    agent_id: uuid.UUID | None
    key: str = Field(description="Shown once; only its hash is stored")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API key")
async def create_api_key(body: KeyCreate, runtime: RuntimeDep, _: Admin) -> KeyCreated:
    async with runtime.uow() as uow:
        if body.agent_id is not None:
            await get_agent(uow.session, body.agent_id)
        row, clear = await create_key(
            uow.session, body.role, agent_id=body.agent_id, name=body.name
        )
    return KeyCreated(id=row.id, role=body.role, agent_id=row.agent_id, key=clear)
