"""The job worker's Lambda entry point (``imagegw.entrypoints.worker.handler``), fed by the
jobs queue.

Each SQS message names a job (``{"job_id": "..."}``, sent by the API) or carries a request
(``{"request": {...}, "job_id"?, "client"?}``, sent by another service; the job id defaults to
``sqs-<messageId>`` so a redelivered message finds its job). The records of a batch run
concurrently; the answer lists the messages to deliver again (partial batch response, needs
``FunctionResponseTypes: [ReportBatchItemFailures]``), so one bad message never fails the rest:

- done (succeeded, failed for good, or nothing to do): acknowledged;
- a job another worker holds, or a failure that cannot have been billed: delivered again, sooner
  than the visibility timeout when the queue allows (ChangeMessageVisibility);
- a message that is not JSON or not a job: delivered again until the queue moves it to the
  dead-letter queue, where an operator can look at it.

Messages are trusted by IAM (only principals allowed to send to the queue can); their jobs run
as ``aws:sqs`` unless they name a ``client``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from imagegw.entrypoints.events import generation_event, is_sqs_event
from imagegw.entrypoints.invocations import accept_event_job
from imagegw.entrypoints.lambda_entry import LambdaHandler, instrument, run
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import GatewayError, MalformedEvent
from imagegw.generation.deadline import lambda_deadline
from imagegw.generation.job_runner import Disposition, process_job
from imagegw.logs import correlation_id
from imagegw.settings import get_settings
from imagegw.state.jobs.model import is_valid_job_id
from imagegw.state.jobs.queue import SqsJobQueue

logger = logging.getLogger(__name__)

_runtime: Runtime | None = None
_entry: LambdaHandler | None = None


def worker_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _entry
    if _entry is None:
        _entry = instrument(_handle, get_settings())
    result: dict[str, Any] = _entry(event, context)
    return result


def _handle(event: Any, context: Any) -> dict[str, Any]:
    if not is_sqs_event(event):
        # Not a batch: nothing to retry, so answer instead of raising.
        logger.error("the worker received an event that is not an SQS batch")
        return {
            "batchItemFailures": [],
            "error": MalformedEvent("The worker handles SQS batches of job messages only.").body()[
                "error"
            ],
        }
    return run(process_batch(worker_runtime(), event, context))


async def process_batch(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    records: list[dict[str, Any]] = event["Records"]
    outcomes = await asyncio.gather(*(_guarded(runtime, record, context) for record in records))
    failures = [
        {"itemIdentifier": record.get("messageId", "")}
        for record, ok in zip(records, outcomes, strict=True)
        if not ok
    ]
    return {"batchItemFailures": failures}


async def _guarded(runtime: Runtime, record: dict[str, Any], context: Any) -> bool:
    """True when the message is done with; never raises (one record must not fail the batch)."""
    message_id = str(record.get("messageId", ""))
    token = correlation_id.set(message_id or None)
    try:
        return await process_record(runtime, record, context)
    except MalformedEvent as exc:
        logger.error("unusable job message: %s", exc.message, extra={"message_id": message_id})
        return False
    except Exception:
        logger.exception("job message failed", extra={"message_id": message_id})
        return False
    finally:
        correlation_id.reset(token)


def _receive_count(record: dict[str, Any]) -> int:
    raw = record.get("attributes", {}).get("ApproximateReceiveCount", "1")
    # isascii: "²".isdigit() is true and int("²") raises; 9 digits: any real count fits.
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 9:
        return int(raw)
    return 1


async def process_record(runtime: Runtime, record: dict[str, Any], context: Any) -> bool:
    try:
        body = json.loads(record.get("body") or "")
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent("The SQS message body is not JSON.") from exc
    deadline = lambda_deadline(
        context, None, gateway_timeout=runtime.settings.api_gateway_timeout_seconds, worker=True
    )
    if isinstance(body, dict) and set(body) == {"job_id"}:
        job_id = body["job_id"]
        if not is_valid_job_id(job_id):
            raise MalformedEvent("The SQS message names an invalid job id.", param="job_id")
    else:
        generation = generation_event(body, where="SQS message body", bare_allowed=True)
        job_id = generation.job_id or f"sqs-{record.get('messageId', '')}"
        try:
            job = await accept_event_job(
                runtime, generation, source="sqs", job_id=job_id, enqueue=False
            )
        except GatewayError as exc:
            logger.warning("could not record the job of a message", extra={"code": exc.code})
            return False
        if job.finished:
            return True
    processed = await process_job(
        runtime, job_id, receive_count=_receive_count(record), deadline=deadline
    )
    if processed.disposition is Disposition.DONE:
        return True
    queue = runtime.job_queue
    receipt = record.get("receiptHandle")
    if isinstance(queue, SqsJobQueue) and isinstance(receipt, str) and processed.retry_after:
        await queue.retry_later(receipt, processed.retry_after)
    return False
