"""Waiting for async jobs to finish without polling them on a timer.

In process (a ``TestClient``): the in-process queue's tasks are awaited on the app's own event
loop (``drain_jobs``), then the job is read once, as a client would.

Over HTTP (the gateway under uvicorn in another thread): the job's ``/events`` stream is followed
to its final event, which the server sends as soon as the job store records the change (the
store's ``changed`` wakes on it; nothing sleeps), then the job is read once with ``GET``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from fastapi.testclient import TestClient

FINISHED = ("succeeded", "failed")
FINAL_EVENTS = {"job.succeeded": "succeeded", "job.failed": "failed"}


def drain_jobs(client: TestClient) -> None:
    """Wait, on the app's event loop, for every async job started so far to finish."""
    queue = client.app.state.runtime.job_queue  # type: ignore[attr-defined]
    assert queue is not None
    client.portal.call(queue.drain)  # type: ignore[union-attr]


def finished_job(client: TestClient, location: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The job's view once every job started so far has finished (no polling)."""
    drain_jobs(client)
    response = client.get(location, headers=dict(headers))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    assert view["status"] in FINISHED, view
    return view


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of each Server-Sent Event, as the bytes arrive."""
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def finished_job_over_http(
    location: str, headers: Mapping[str, str], *, timeout: float = 30.0
) -> dict[str, Any]:
    """The job's view (``GET location``) once its ``/events`` stream has sent the final event.

    ``timeout`` bounds each read: a job that never finishes fails the test instead of hanging it.
    """
    last: tuple[str, dict[str, Any]] | None = None
    with httpx.stream("GET", location + "/events", headers=dict(headers), timeout=timeout) as sse:
        assert sse.status_code == 200, sse.read().decode(errors="replace")
        for last in sse_events(sse):
            if last[0] in FINAL_EVENTS:
                break
    assert last is not None, "the stream ended without an event"
    assert last[0] in FINAL_EVENTS, f"the stream ended before the job did: {last}"
    response = httpx.get(location, headers=dict(headers), timeout=timeout)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    assert view["status"] == FINAL_EVENTS[last[0]], (last, view)
    return view
