"""FastAPI dependencies: the process runtime and the authenticated caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from imagegw.api.context import ApiContext
from imagegw.state.auth import Principal, authenticate


async def get_runtime(request: Request) -> ApiContext:
    # async although it does not await: FastAPI runs a plain function dependency in a worker
    # thread, which costs a thread hop per request and the import of anyio's backend on the first.
    runtime: ApiContext = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ApiContext, Depends(get_runtime)]


def require_scope(scope: str) -> Callable[[Request, ApiContext], Awaitable[Principal]]:
    async def principal(request: Request, runtime: RuntimeDep) -> Principal:
        caller = await authenticate(request.headers.get("authorization"), runtime.key_store)
        caller.require(scope)
        request.state.client = caller.name
        return caller

    return principal
