"""The gateway function's Lambda entry point (``imagegw.entrypoints.handler.handler``).
Dispatch by event:

- HTTP (API Gateway REST v1, HTTP API v2, Function URL): the FastAPI app through Mangum, lifespan
  off (Mangum would otherwise run startup and shutdown on every invocation). The route reads the
  Lambda context Mangum puts in the scope to know its deadline.
- SQS batches: the job worker's code (``imagegw.entrypoints.worker``), with partial batch
  failures, for deployments that point the queue at this function.
- EventBridge events: ``detail`` is a generation request; the result is recorded as a job.
- Anything else that is a JSON object: a direct invocation (``imagegw.entrypoints.invocations``).

Non-HTTP invocations have no bearer key. They are trusted because IAM let the sender invoke the
function (or write to the queue), and they run as ``aws:<source>`` with every scope. Malformed
or unsupported events get ``{"error": {...}}`` back, never an exception: a raise would only make
the sender retry something that fails the same way. The exception is an outage of the job store
or queue during an EventBridge event: the raise hands the event to Lambda's failure handling
(retries if configured, else the on-failure destination), where it is not lost.

The app, the adapter and the Powertools wrappers are built on the first invocation, once per
process: importing this module does no I/O and builds nothing.
"""

from __future__ import annotations

import gc

# The imports below create some 50,000 objects (FastAPI, pydantic, the gateway's modules) and
# none of them is garbage, but each collection the allocations trigger walks the ones made so
# far: on a cold start that was 40 to 60 ms of collections that freed nothing (bench/RESULTS.md,
# round 6). The collector is off until they are done, then everything imported is frozen
# (below) and collection resumes for what requests create.
gc.disable()

import logging
from typing import TYPE_CHECKING, Any, cast

from mangum import Mangum

if TYPE_CHECKING:
    from fastapi import FastAPI

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.events import (
    error_result,
    is_eventbridge_event,
    is_http_event,
    is_sqs_event,
    unsupported_kind,
)
from imagegw.entrypoints.lambda_entry import LambdaHandler, instrument, run
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import GatewayError, MalformedEvent, ServiceUnavailable, UnsupportedEvent
from imagegw.logs import correlation_id
from imagegw.settings import get_settings

logger = logging.getLogger(__name__)

_adapter: Mangum | None = None
_entry: LambdaHandler | None = None

__all__ = ["handler", "is_http_event"]

# Everything imported so far lives as long as the process. Left in the collector's
# generations, it would make the first full collection, which the first event's imports
# trigger, walk all of it to free nothing: 25 to 30 ms of the cold start. Frozen,
# collections only ever look at newer objects.
gc.freeze()
gc.enable()


def _http_adapter() -> Mangum:
    global _adapter
    if _adapter is None:
        _adapter = Mangum(create_app(), lifespan="off")
    return _adapter


def _runtime() -> Runtime:
    app = cast("FastAPI", _http_adapter().app)
    runtime: Runtime = app.state.runtime
    return runtime


def handler(event: Any, context: Any) -> Any:
    global _entry
    if _entry is None:
        _entry = instrument(dispatch, get_settings())
    return _entry(event, context)


def dispatch(event: Any, context: Any) -> Any:
    if is_http_event(event):
        return _http(event, context)
    if is_sqs_event(event):
        from imagegw.entrypoints.worker import process_batch

        return run(process_batch(_runtime(), event, context))
    kind = unsupported_kind(event)
    if kind is not None:
        return error_result(
            UnsupportedEvent(
                f"This function does not handle {kind}. It serves HTTP requests (API Gateway, "
                "Function URL), SQS job batches, EventBridge events and direct invocations."
            )
        )
    if is_eventbridge_event(event):
        return _invocation("eventbridge", event, context)
    return _invocation("invoke", event, context)


def _http(event: dict[str, Any], context: Any) -> Any:
    try:
        response: dict[str, Any] = _http_adapter()(event, context)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        # Mangum raises on events that look like HTTP but lack its required fields (the app
        # itself never raises: its middleware answers 500 as a last resort); answer
        # with the same shape as any other unusable event instead of a Lambda error.
        return error_result(
            MalformedEvent(
                f"The event looks like an HTTP event but is malformed ({exc.__class__.__name__})."
            )
        )
    return response


def _invocation(kind: str, event: Any, context: Any) -> Any:
    from imagegw.entrypoints.invocations import handle_direct, handle_eventbridge

    event_id = event.get("id") if kind == "eventbridge" and isinstance(event, dict) else None
    request_id = getattr(context, "aws_request_id", None)
    token = correlation_id.set(str(event_id or request_id or "") or None)
    try:
        runtime = _runtime()
        if kind == "eventbridge":
            return run(handle_eventbridge(runtime, event, context))
        return run(handle_direct(runtime, event, context))
    except ServiceUnavailable as exc:
        if kind == "eventbridge":
            # Lambda's failure handling keeps the event (retry or on-failure destination); a
            # retried event finds its job by id, so it is never generated twice.
            logger.exception("event not processed; raising so that Lambda keeps it")
            raise
        logger.exception("invocation failed")
        return error_result(exc)
    except GatewayError as exc:
        logger.info("invocation refused: %s", exc.code, extra={"kind": kind})
        return error_result(exc)
    except Exception as exc:
        logger.exception("invocation failed", extra={"kind": kind})
        return error_result(exc)
    finally:
        correlation_id.reset(token)
