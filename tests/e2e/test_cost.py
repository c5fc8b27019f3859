"""What the official openai client sees of costs: `cost` and `x-imagegw-cost-usd`."""

from __future__ import annotations

import openai

from support.fake_openai import FakeOpenAI, Images

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
