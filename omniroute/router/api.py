"""The router's REST API, assembled."""

from __future__ import annotations

from fastapi import APIRouter

from omniroute.router.agents.endpoints import router as agents
from omniroute.router.conversations.endpoints import router as conversations
from omniroute.router.customers.endpoints import router as customers
from omniroute.router.keys.endpoints import router as keys
from omniroute.router.notifications.endpoints import router as feedback
from omniroute.router.offers.endpoints import router as offers
from omniroute.router.queues.endpoints import router as queues
from omniroute.router.queues.endpoints import stats_router as stats
from omniroute.router.webhooks.endpoints import router as webhooks


def router_api() -> APIRouter:
    api = APIRouter()
    for part in (agents, offers, conversations, queues, keys):
        api.include_router(part)
    for part in (customers, feedback, stats):
        api.include_router(part)
    api.include_router(webhooks)
    return api
