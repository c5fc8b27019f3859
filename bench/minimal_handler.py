"""The cold-start baseline: the smallest FastAPI + Mangum Lambda handler answering the same events.

It has the gateway's two routes with fixed answers, no auth, no catalog, no settings: what any
FastAPI service on Lambda pays before doing its own work. Built at import, as most are.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/v1/models")
async def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "local/sketch", "object": "model"}]}


_answer: list[str] = []


def answer_b64() -> str:
    """The image the answer carries: none, or (bench/lambda_artifact.py) the same base64 the
    gateway's upstream answers, read once from IMAGEGW_BENCH_B64_FILE."""
    if not _answer:
        path = os.environ.get("IMAGEGW_BENCH_B64_FILE")
        _answer.append(open(path, encoding="ascii").read() if path else "")  # noqa: SIM115
    return _answer[0]


@app.post("/v1/images/generations")
async def generate(body: dict[str, Any]) -> dict[str, Any]:
    return {"created": 0, "data": [{"b64_json": answer_b64()}]}


handler = Mangum(app, lifespan="off")
