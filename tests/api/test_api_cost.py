"""Every answer says what it cost: `cost` in the body, `x-imagegw-cost-usd`, and in jobs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from api_support import GENERATIONS, client_for
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings

from conftest import AUTH
from support.fakes import TINY_PNG, FakeClock, FakeProvider
from support.jobs import finished_job

# gpt-image-2's rates: text in $5, image in $8, image out $30 per 1M tokens (models.toml).
USAGE = {
    "input_tokens": 50,
    "output_tokens": 4160,
    "total_tokens": 4210,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
}
USAGE_USD = (10 * 5 + 40 * 8 + 4160 * 30) / 1_000_000


def answer(
    *,
    usage: dict[str, object] | None = USAGE,
    delivered: int | None = None,
    reported: Decimal | None = None,
    quality: str | None = "high",
    size: str | None = "1024x1024",
) -> FakeProvider:
    def result(request: ImageRequest) -> ImageResult:
        count = request.n if delivered is None else delivered
        return ImageResult(
            images=[GeneratedImage(media_type="image/png", data=TINY_PNG) for _ in range(count)],
            size=size,
            quality=quality,
            usage=usage,
            filtered=request.n - count,
            upstream_cost_usd=reported,
        )

    return FakeProvider(result=result)


MakeClient = Callable[[FakeProvider], TestClient]


@pytest.fixture
def make_client(settings: Settings, clock: FakeClock) -> Iterator[MakeClient]:
    with contextlib.ExitStack() as stack:

        def make(provider: FakeProvider) -> TestClient:
            providers = {"openai": provider, "google": provider}
            runtime = Runtime(settings, providers=providers, clock=clock)
            return stack.enter_context(client_for(runtime))

        yield make


def generate(client: TestClient, **request: object) -> tuple[dict[str, object], str]:
    response = client.post(GENERATIONS, json={"prompt": "a lighthouse", **request}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["x-imagegw-cost-usd"]


def test_a_token_billed_model_costs_what_its_usage_says(make_client: MakeClient) -> None:
    client = make_client(answer())
    body, header = generate(client, model="gpt-image-2", quality="high")
    assert body["usage"] == USAGE  # as the upstream reported it
    assert body["cost"] == {"amount": USAGE_USD, "currency": "USD", "estimated": False}
    assert header == f"{USAGE_USD:.6f}"


def test_without_usage_the_cost_is_estimated_from_the_catalog(make_client: MakeClient) -> None:
    client = make_client(answer(usage=None))
    body, header = generate(client, model="gpt-image-2", n=2, quality="high", size="1024x1024")
    assert "usage" not in body
    assert body["cost"] == {"amount": 0.422, "currency": "USD", "estimated": True}
    assert header == "0.422000"


def test_partial_delivery_costs_only_the_delivered_images(make_client: MakeClient) -> None:
    client = make_client(answer(usage=None, delivered=1, size="4096x4096", quality=None))
    body, _ = generate(client, model="google/gemini-3-pro-image", n=3, size="4096x4096")
    assert body["images_filtered"] == 2
    assert body["cost"] == {"amount": 0.24, "currency": "USD", "estimated": True}


def test_a_model_without_a_known_price_says_so(make_client: MakeClient) -> None:
    client = make_client(answer())
    body, header = generate(client, model="gpt-image-2.6-flare")
    assert body["cost"] is None
    assert header == "unknown"
    assert body["usage"] == USAGE


def test_local_models_cost_nothing_exactly(client: TestClient) -> None:
    body, header = generate(client, model="local/sketch", n=2)
    assert body["cost"] == {"amount": 0.0, "currency": "USD", "estimated": False}
    assert header == "0.000000"


def test_a_job_records_its_cost(make_client: MakeClient) -> None:
    client = make_client(answer())
    request = {"model": "gpt-image-2", "prompt": "a bay"}
    response = client.post(GENERATIONS, json=request, headers={**AUTH, "Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    done = finished_job(client, response.headers["location"], AUTH)
    assert done["status"] == "succeeded"
    assert done["result"]["cost"] == {"amount": USAGE_USD, "currency": "USD", "estimated": False}
    assert done["result"]["usage"] == USAGE
