"""Annotated dependencies for the router's endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from omniroute.router.runtime import RouterRuntime
from omniroute.shared.auth import Principal, Role, require_roles


def _runtime(request: Request) -> RouterRuntime:
    runtime: RouterRuntime = request.app.state.router_runtime
    return runtime


RuntimeDep = Annotated[RouterRuntime, Depends(_runtime)]
AgentOrSupervisor = Annotated[Principal, require_roles(Role.AGENT, Role.SUPERVISOR)]
Supervisor = Annotated[Principal, require_roles(Role.SUPERVISOR)]
Admin = Annotated[Principal, require_roles()]
