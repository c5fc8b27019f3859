"""The job record and its life.

    queued --claim--> running --> succeeded
       ^                 |  \\--> failed
       '---- release ----'        (release: a failure that cannot have been billed, retried)

A claim is a conditional write (queued -> running) that also sets a lease: a random token and
the time by which the claiming worker will have finished or died. Every later write of that
attempt is conditional on the token, so a stale worker can never overwrite a newer attempt.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["queued", "running", "succeeded", "failed"]
QUEUED: Status = "queued"
RUNNING: Status = "running"
SUCCEEDED: Status = "succeeded"
FAILED: Status = "failed"
TERMINAL: frozenset[str] = frozenset({SUCCEEDED, FAILED})
# What a job's request is: a generation (its OpenAI JSON body) or an edit (the JSON form of an
# edit whose inputs are uploads of the job's owner, generation/edit_jobs.py).
GENERATION = "generation"
EDIT = "edit"

# Ids the gateway makes, and the ids event senders may choose (printable, bounded).
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def new_job_id() -> str:
    return f"job_{secrets.token_hex(16)}"


def idempotent_job_id(client: str, idempotency_key: str) -> str:
    """The job an Idempotency-Key names: scoped to the client, so two clients never meet."""
    digest = hashlib.sha256(f"{client}\0{idempotency_key}".encode()).hexdigest()
    return f"job_{digest[:32]}"


def is_valid_job_id(value: object) -> bool:
    return isinstance(value, str) and _JOB_ID.match(value) is not None


# A DynamoDB item holds at most 400 KB. A valid request is far smaller (a prompt is at most
# 32,000 characters), but a refused one can be anything its sender wrote.
RECORDED_REQUEST_CHARS = 256 * 1024


def recordable_request(request: str) -> str:
    """``request`` as a refused job's record keeps it: whole, or (beyond what a record holds) as
    its size and digest, which still tell a retried event from another request under its id."""
    if len(request) <= RECORDED_REQUEST_CHARS:
        return request
    digest = hashlib.sha256(request.encode("utf-8", "surrogatepass")).hexdigest()
    return f'{{"omitted": "a request of {len(request)} characters", "sha256": "{digest}"}}'


@dataclass(frozen=True)
class Job:
    id: str
    client: str  # the key name that may read the job (or aws:<source> for event jobs)
    status: Status
    request: str  # the OpenAI request body, as JSON text
    source: str  # api | sqs | eventbridge | invoke
    created_at: int
    updated_at: int
    expires_at: int  # DynamoDB TTL: the record is deleted some time after this
    attempts: int = 0
    lease_token: str | None = None
    lease_until: float | None = None
    # On success: {"images": [{"key", "revised_prompt"?}], "response": {...the body but data}}.
    result: dict[str, Any] | None = None
    # On failure: OpenAI's error object {"message", "type", "param", "code"}.
    error: dict[str, Any] | None = None
    # Why the last attempt was given back to the queue (kept while queued again).
    last_error: dict[str, Any] | None = None
    # What the submission took from the key: images from its rate/quota {"counters": [...],
    # "images": n} and, with a spend budget, the hold {"spend": {"counters": [...], "micros"}}.
    # Settled when the job ends (never for an interrupted job: the upstream may have billed).
    reserved: dict[str, Any] | None = None
    # The model patterns the owner's key allowed at submission (None: every model): the job
    # runs with them, so a catalog fallback is used only where the key could have asked for it.
    models: list[str] | None = None
    kind: str = GENERATION
    # How far the job has come (generation/job_progress.py): {"stage", "images", "images_done",
    # "percent"?, "upstream_stage"?, "partial_images"?: [{"index", "key"}]}. Written as it runs.
    progress: dict[str, Any] | None = None
    # The request as its sender gave it, when ``request`` is a rewritten form of it (an edit
    # event's image references, read and kept as uploads: generation/edit_jobs.py). None: the
    # same as ``request``.
    submitted: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def same_submission(self, client: str, request: str) -> bool:
        """Whether ``client`` sending ``request`` under this job's id is this job again (a
        retried event, a lost 202) rather than another request reusing the id."""
        return (self.client, self.submitted or self.request) == (client, request)
