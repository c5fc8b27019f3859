"""How much time an upstream call gets under Lambda: pure arithmetic on fake clocks."""

from __future__ import annotations

from typing import Any

from imagegw.generation.deadline import ASSUMED_GATEWAY_OVERHEAD_SECONDS, Deadline, lambda_deadline

MONO = 500.0
WALL = 1_800_000_000.0


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def rest_event(received_ms: float | None) -> dict[str, Any]:
    context: dict[str, Any] = {"domainName": "abc.execute-api.us-east-1.amazonaws.com"}
    if received_ms is not None:
        context["requestTimeEpoch"] = received_ms
    return {"httpMethod": "POST", "requestContext": context}


def function_url_event() -> dict[str, Any]:
    return {
        "version": "2.0",
        "requestContext": {"domainName": "abc.lambda-url.us-east-1.on.aws", "timeEpoch": 0},
    }


def deadline(context: Any, event: Any, **kwargs: Any) -> Deadline | None:
    return lambda_deadline(
        context, event, gateway_timeout=29.0, wall=lambda: WALL, clock=lambda: MONO, **kwargs
    )


def test_outside_lambda_there_is_no_deadline() -> None:
    assert deadline(None, rest_event(None)) is None


def test_a_function_url_request_gets_the_function_time() -> None:
    found = deadline(Context(600_000), function_url_event())
    assert found is not None
    assert (found.at, found.limit) == (MONO + 600.0, "function")


def test_api_gateway_cuts_earlier_than_a_long_function_timeout() -> None:
    # API Gateway received the request 3 s ago: 26 s of its 29 s are left.
    found = deadline(Context(600_000), rest_event((WALL - 3.0) * 1000))
    assert found is not None
    assert (found.at, found.limit) == (MONO + 26.0, "api_gateway")


def test_an_implausible_receive_time_falls_back_to_an_assumed_overhead() -> None:
    for received in (None, 0.0, (WALL + 60) * 1000):
        found = deadline(Context(600_000), rest_event(received))
        assert found is not None
        assert found.at == MONO + 29.0 - ASSUMED_GATEWAY_OVERHEAD_SECONDS


def test_a_short_function_timeout_wins_over_api_gateway() -> None:
    found = deadline(Context(10_000), rest_event((WALL - 1.0) * 1000))
    assert found is not None
    assert (found.at, found.limit) == (MONO + 10.0, "function")


def test_worker_deadlines_say_so() -> None:
    found = deadline(Context(120_000), None, worker=True)
    assert found is not None
    assert found.limit == "worker"


def test_budget_is_the_configured_timeout_until_the_deadline_is_nearer() -> None:
    at = Deadline(at=MONO + 30.0, limit="api_gateway", clock=lambda: MONO)
    assert at.budget(10.0, 2.0).limit == "configured"
    assert at.budget(10.0, 2.0).seconds == 10.0
    tight = at.budget(300.0, 2.0)
    assert (tight.seconds, tight.limit) == (28.0, "api_gateway")
    assert "Function URL" in tight.advice()
    assert Deadline(at=MONO + 1.0, limit="function", clock=lambda: MONO).budget(300, 2).seconds == 0
