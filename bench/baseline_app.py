"""The baseline of bench/ingest.py: a bare FastAPI app that only validates the contact JSON.

It validates the body with the gateway's own request model (`ContactIn`, so exactly the same
rules) and answers 202 with a small JSON body, like the gateway's receipt. No auth, no broker,
no logging: what is left of the gateway's throughput against this is the cost of its own work.
Served by uvicorn with the same settings as the gateway (see bench/ingest.py), and the same
collector settings as every Omniroute service.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from omniroute.gateway.schemas import ContactIn
from omniroute.shared.http import prepare_gc_for_serving

app = FastAPI(title="ingest baseline")


@app.post("/v1/contacts", status_code=202)
async def post_contact(contact: ContactIn) -> JSONResponse:
    return JSONResponse({"external_id": contact.external_id}, status_code=202)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


prepare_gc_for_serving()
