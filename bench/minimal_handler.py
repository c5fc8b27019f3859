"""The cold-start baseline: the smallest FastAPI + Mangum Lambda handler answering the same events.

It has the gateway's two routes with fixed answers, no auth, no catalog, no settings: what any
FastAPI service on Lambda pays before doing its own work. Built at import, as most are.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/v1/models")
async def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "local/sketch", "object": "model"}]}


@app.post("/v1/images/generations")
async def generate(body: dict[str, Any]) -> dict[str, Any]:
    return {"created": 0, "data": [{"b64_json": ""}]}


handler = Mangum(app, lifespan="off")
