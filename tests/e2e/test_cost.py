"""What the official openai client sees of costs: `cost` and `x-imagegw-cost-usd`."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from e2e.conftest import MakeClient, MakeGateway
from imagegw.state.auth import hash_key

from support.fake_openai import FakeOpenAI, Images, Stream

# gpt-image-2: text in $5, image in $8, image out $30 per 1M tokens.
USAGE = {
    "input_tokens": 11,
    "input_tokens_details": {"text_tokens": 11, "image_tokens": 0},
    "output_tokens": 3136,
    "total_tokens": 3147,
}
USAGE_USD = (11 * 5 + 3136 * 30) / 1_000_000


def test_the_client_reads_the_cost_computed_from_the_upstream_usage(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Images(usage=USAGE, quality="medium", size="1024x1024"))
    raw = oai.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a lighthouse", quality="medium"
    )
    assert raw.headers["x-imagegw-cost-usd"] == f"{USAGE_USD:.6f}"
    response = raw.parse()
    assert response.usage is not None
    assert response.usage.output_tokens == 3136
    extra = response.model_extra or {}
    assert extra["cost"] == {"amount": USAGE_USD, "currency": "USD", "estimated": False}


def test_an_unknown_price_reaches_the_client_as_null(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Images(usage=USAGE))
    raw = oai.images.with_raw_response.generate(model="gpt-image-2.6-flare", prompt="a lighthouse")
    assert raw.headers["x-imagegw-cost-usd"] == "unknown"
    assert (raw.parse().model_extra or {})["cost"] is None


def test_over_budget_the_client_gets_a_402_it_does_not_retry(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    budget_key = "sk-budget-e2e-0000000000000000"
    keys = {
        "keys": [
            {
                "name": "budgeted",
                "sha256": hash_key(budget_key),
                "scopes": ["*"],
                "daily_budget_usd": 0.3,
            }
        ]
    }
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys), encoding="utf-8")
    gateway = make_gateway(api_keys_file=path)
    # Retries on: the client would retry a 402 only if the gateway said so.
    client = make_client(gateway, api_key=budget_key, max_retries=2)
    upstream.enqueue(Images(usage=USAGE))
    request = {"model": "gpt-image-2", "prompt": "a lighthouse", "quality": "high"}
    client.images.generate(**request, size="1024x1024")  # holds up to $0.211, spends $0.094
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(**request, size="1024x1024")
    error = caught.value
    assert error.status_code == 402
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["x-imagegw-budget-renews-at"].endswith("T00:00:00Z")
    body = error.body
    assert isinstance(body, dict)
    assert (body["type"], body["code"]) == ("billing_error", "insufficient_balance")
    assert "daily spend budget of $0.30" in body["message"]
    assert len(upstream.requests) == 1  # refused before the upstream, and not retried


def test_a_stream_charges_its_partial_images_and_settles_the_budget(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    budget_key = "sk-budget-stream-000000000000000"
    keys = {
        "keys": [
            {"name": "streamer", "sha256": hash_key(budget_key), "scopes": ["*"],
             "daily_budget_usd": 0.05},
        ]
    }  # fmt: skip
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys), encoding="utf-8")
    client = make_client(make_gateway(api_keys_file=path), api_key=budget_key)
    upstream.enqueue(Stream())
    request = {"model": "gpt-image-2", "prompt": "a lighthouse", "size": "1024x1024"}
    events = list(client.images.generate(**request, quality="low", stream=True, partial_images=2))
    assert [event.type for event in events][-1] == "image_generation.completed"
    completed = events[-1]
    usage = completed.usage  # type: ignore[union-attr]
    tokens_usd = (usage.input_tokens * 5 + usage.output_tokens * 30) / 1_000_000
    # Each partial image is 100 more output tokens; whether usage counts them is unconfirmed.
    expected = round(tokens_usd + 2 * 100 * 30 / 1_000_000, 6)
    extra = completed.model_extra or {}
    assert extra["cost"] == {
        "amount": pytest.approx(expected),
        "currency": "USD",
        "estimated": True,
    }
    # The stream held up to $0.006 + $0.006 + the prompt, and settled at its cost: a high
    # quality request (up to $0.211) does not fit the $0.05 budget; another low one does.
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(**request, quality="high", stream=True)
    assert caught.value.status_code == 402
    upstream.enqueue(Stream())
    again = list(client.images.generate(**request, quality="low", stream=True, partial_images=2))
    assert again[-1].type == "image_generation.completed"
