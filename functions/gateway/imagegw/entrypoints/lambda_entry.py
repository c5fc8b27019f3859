"""What every Lambda entry point shares: logging and tracing around the handler, and the event
loop the async code runs on.

Every line an invocation logs carries its Lambda context (cold start, function request id,
X-Ray trace id; ``logs.lambda_logging``); the event itself is never logged (it holds prompts
and Authorization headers). The Powertools Tracer, when ``IMAGEGW_TRACING`` is on, records the
invocation without its response (images, links).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from imagegw.logs import invocation, invocation_fields, lambda_logging
from imagegw.observability import tracer
from imagegw.settings import Settings

T = TypeVar("T")
LambdaHandler = Callable[[Any, Any], Any]


def instrument(handler: LambdaHandler, settings: Settings) -> LambdaHandler:
    lambda_logging(settings.log_level)

    # wraps: the tracer names the invocation's segment after the handler ("## dispatch").
    @functools.wraps(handler)
    def wrapped(event: Any, context: Any) -> Any:
        token = invocation.set(invocation_fields(context))
        try:
            return handler(event, context)
        finally:
            invocation.reset(token)

    instrumented: LambdaHandler = wrapped
    if settings.tracing:
        instrumented = tracer().capture_lambda_handler(wrapped, capture_response=False)
    return instrumented


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
