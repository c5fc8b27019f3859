"""What every Lambda entry point shares: Powertools logging and tracing around the handler,
and the event loop the async code runs on.

The Logger adds the Lambda context (cold start, function request id, X-Ray trace id) to every
line and never logs the event (it holds prompts and Authorization headers). The Tracer, when
``IMAGEGW_TRACING`` is on, records the invocation without its response (images, links).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from imagegw.logs import lambda_logger
from imagegw.observability import tracer
from imagegw.settings import Settings

T = TypeVar("T")
LambdaHandler = Callable[[Any, Any], Any]


def instrument(handler: LambdaHandler, settings: Settings) -> LambdaHandler:
    logger = lambda_logger(settings.log_level)
    wrapped: LambdaHandler = logger.inject_lambda_context(
        handler, clear_state=True, log_event=False
    )
    if settings.tracing:
        wrapped = tracer().capture_lambda_handler(wrapped, capture_response=False)
    return wrapped


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on the process's loop, the one Mangum uses, so shared clients stay on one loop."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    if loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop.run_until_complete(coroutine)
