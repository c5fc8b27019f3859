"""OpenAIProvider.stream against the fake upstream's real SSE: relayed event by event."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from imagegw.catalog import Catalog
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    RateLimited,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
)
from imagegw.providers.base import Completed, ImageRequest, PartialImage, StreamEvent
from imagegw.providers.openai import OpenAIProvider
from providers.conftest import UPSTREAM_KEY, MakeRequest

from support.fake_openai import Delay, FakeOpenAI, Images, Stream, rate_limited


async def collect(fake: FakeOpenAI, request: ImageRequest) -> list[StreamEvent]:
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url=fake.base_url)
        return [event async for event in provider.stream(request)]


async def failure(fake: FakeOpenAI, request: ImageRequest) -> tuple[GatewayError, int]:
    """The error the stream ends with, and how many events came before it."""
    seen: list[StreamEvent] = []
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url=fake.base_url)
        with pytest.raises(GatewayError) as caught:
            await drain(provider.stream(request), seen)
    return caught.value, len(seen)


async def drain(events: AsyncIterator[StreamEvent], seen: list[StreamEvent]) -> None:
    async for event in events:
        seen.append(event)


def decoded(image_b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(image_b64)))
    image.load()
    return image


@pytest.mark.anyio
async def test_partials_then_the_completed_image_with_usage(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Stream())
    request = make_request("openai/gpt-image-2", size="1024x1024", partial_images=2)
    events = await collect(upstream, request)
    sent = upstream.requests[0]
    assert sent.json["stream"] is True
    assert sent.json["partial_images"] == 2
    assert sent.header("accept") == "text/event-stream"
    assert [type(event) for event in events] == [PartialImage, PartialImage, Completed]
    partials = [event for event in events if isinstance(event, PartialImage)]
    assert [event.index for event in partials] == [0, 1]
    # The upstream's own fields ride along: requested settings, its created_at.
    assert partials[0].fields["size"] == "1024x1024"
    assert partials[0].fields["quality"] == "auto"
    assert isinstance(partials[0].fields["created_at"], int)
    assert decoded(partials[0].image.b64()).size == (1024, 1024)
    completed = events[-1]
    assert isinstance(completed, Completed)
    result = completed.result
    assert (result.size, result.quality, result.background, result.output_format) == (
        "1024x1024",
        "medium",
        "opaque",
        "png",
    )
    assert result.usage is not None
    assert result.usage["output_tokens"] == 272
    assert decoded(result.images[0].b64()).format == "PNG"


@pytest.mark.anyio
async def test_each_event_is_passed_on_while_the_upstream_is_still_generating(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    hold = threading.Event()
    upstream.enqueue(Stream(hold=hold))
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url=upstream.base_url)
        events = provider.stream(make_request("openai/gpt-image-2", partial_images=1))
        first = await anext(events)
        # The upstream holds its completed event until told: the first one was not buffered.
        assert isinstance(first, PartialImage)
        assert upstream.streams_finished == 0
        hold.set()
        assert isinstance(await anext(events), Completed)
        await events.aclose()


@pytest.mark.anyio
async def test_done_marker_and_unknown_events_are_skipped(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Stream(done_marker=True))
    events = await collect(upstream, make_request("openai/gpt-image-2", partial_images=0))
    assert [type(event) for event in events] == [Completed]


@pytest.mark.anyio
async def test_an_error_event_mid_stream_is_a_gateway_error(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(
        Stream(
            error={
                "message": "blocked SECRET-UPSTREAM-DETAIL",
                "type": "image_generation_user_error",
                "param": None,
                "code": "moderation_blocked",
            }
        )
    )
    error, seen = await failure(upstream, make_request("openai/gpt-image-2", partial_images=1))
    assert seen == 1
    assert isinstance(error, ContentPolicyViolation)
    assert "SECRET" not in error.message


@pytest.mark.anyio
async def test_a_server_error_event_mid_stream_hides_the_upstream_message(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(
        Stream(error={"message": "SECRET-UPSTREAM-DETAIL", "type": "server_error", "code": None})
    )
    error, _ = await failure(upstream, make_request("openai/gpt-image-2"))
    assert isinstance(error, UpstreamError)
    assert "SECRET" not in error.message


@pytest.mark.anyio
async def test_a_stream_cut_before_completed_is_a_bad_response(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Stream(truncate=True))
    error, seen = await failure(upstream, make_request("openai/gpt-image-2", partial_images=2))
    assert seen == 2
    assert isinstance(error, UpstreamBadResponse)


@pytest.mark.anyio
async def test_a_refusal_before_the_stream_is_the_usual_error(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(rate_limited("7"))
    error, seen = await failure(upstream, make_request("openai/gpt-image-2"))
    assert seen == 0
    assert isinstance(error, RateLimited)
    assert error.headers["retry-after"] == "7"


@pytest.mark.anyio
async def test_a_compatible_upstream_answering_json_gives_the_image_as_completed(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Images())
    events = await collect(upstream, make_request("openai/gpt-image-2", partial_images=2))
    assert [type(event) for event in events] == [Completed]


@pytest.mark.anyio
async def test_dall_e_is_not_asked_to_stream(upstream: FakeOpenAI, catalog: Catalog) -> None:
    # Retired, but the provider contract still holds for a DALL-E-shaped upstream.
    spec = catalog.get("openai/dall-e-3")
    assert spec is not None
    request = ImageRequest(
        spec=spec, upstream_model="dall-e-3", prompt="a boat", n=1, timeout_seconds=10
    )
    upstream.enqueue(Images())
    events = await collect(upstream, request)
    assert [type(event) for event in events] == [Completed]
    assert "stream" not in upstream.requests[0].json


@pytest.mark.anyio
async def test_the_whole_stream_shares_the_requests_deadline(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Delay(5, Stream()))
    error, _ = await failure(upstream, make_request("openai/gpt-image-2", timeout_seconds=0.3))
    assert isinstance(error, UpstreamTimeout)
