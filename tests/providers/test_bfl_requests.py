"""The BFL provider against the fake BFL: the real requests, polling, downloads, every failure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from imagegw.catalog import Catalog
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    ProviderNotConfigured,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers import build_provider
from imagegw.providers.base import ImageRequest
from imagegw.providers.bfl.provider import BflProvider
from imagegw.providers.bfl.task import Endpoint, Polling
from imagegw.providers.bfl.transport import UntrustedUrl, trusted_polling_url, trusted_sample_url
from imagegw.providers.progress import Progress, watching
from imagegw.settings import Settings

from support.fake_bfl import (
    POLL_PATH,
    Accept,
    BflError,
    Delay,
    FakeBfl,
    Hangup,
    Image,
    Raw,
    rate_limited,
    server_error,
)
from support.fake_openai import encode_image

MakeRequest = Callable[..., ImageRequest]
FAST = Polling(first_delay=0.01, factor=1.5, max_delay=0.05)
PRO = "bfl/flux-2-pro"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def bfl() -> Iterator[FakeBfl]:
    with FakeBfl() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _fresh(bfl: FakeBfl) -> None:
    bfl.reset()


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(
    bfl: FakeBfl, http: httpx.AsyncClient, *, polling: Polling = FAST, **options: Any
) -> BflProvider:
    endpoint = Endpoint(httpx.URL(bfl.origin), bfl.api_key)
    return BflProvider(http, endpoint, polling=polling, **options)


# ------------------------------------------------------------------------------ the requests


@pytest.mark.anyio
async def test_submit_poll_download_with_the_real_requests(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(statuses=("Pending", "Pending", "Ready")))
    result = await provider(bfl, http).generate(
        make_request(PRO, prompt="a red fox", size="1536x1024", output_format="png")
    )
    submit, *_ = bfl.submits()
    assert submit.path == "/v1/flux-2-pro"
    assert submit.header("x-key") == bfl.api_key
    assert submit.header("content-type") == "application/json"
    assert submit.json == {
        "prompt": "a red fox",
        "width": 1536,
        "height": 1024,
        "output_format": "png",
    }
    polls = bfl.polls()
    assert len(polls) == 3
    for poll in polls:
        assert poll.method == "GET"
        assert poll.path.startswith(POLL_PATH)  # the returned URL, not one built from the id
        assert poll.header("x-key") == bfl.api_key
    (download,) = bfl.downloads()
    assert download.header("x-key") is None  # the key never goes to the image link
    assert len(result.images) == 1
    image = result.images[0]
    assert image.media_type == "image/png"
    assert image.data() == encode_image("1536x1024", "png")
    assert result.size == "1536x1024"
    assert result.output_format == "png"
    assert (result.filtered, result.failed) == (0, 0)
    assert image.revised_prompt is None  # BFL echoed the prompt: nothing was rewritten


@pytest.mark.anyio
async def test_default_size_and_format_are_sent_and_reported(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    result = await provider(bfl, http).generate(make_request("bfl/flux-2-klein-4b"))
    assert bfl.submits()[0].json == {
        "prompt": "a lighthouse at dusk",
        "width": 1024,
        "height": 1024,
    }
    assert result.size == "1024x1024"
    assert result.output_format == "jpeg"  # BFL's default, read from the image


@pytest.mark.anyio
async def test_snapshot_is_sent_under_its_own_path(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    await provider(bfl, http).generate(make_request("bfl/flux-2-pro-preview"))
    assert bfl.submits()[0].path == "/v1/flux-2-pro-preview"


@pytest.mark.parametrize(
    ("model", "size", "ratio", "produced"),
    [
        ("bfl/flux-pro-1.1-ultra", "1792x1024", "7:4", "1344x768"),
        ("bfl/flux-pro-1.1-ultra", "2016x864", "21:9", "1568x672"),
        ("bfl/flux-kontext-pro", "1024x1536", "2:3", "832x1248"),
    ],
)
@pytest.mark.anyio
async def test_aspect_ratio_models_get_the_ratio_and_report_what_came_back(
    bfl: FakeBfl,
    http: httpx.AsyncClient,
    make_request: MakeRequest,
    model: str,
    size: str,
    ratio: str,
    produced: str,
) -> None:
    result = await provider(bfl, http).generate(make_request(model, size=size))
    assert bfl.submits()[0].json == {"prompt": "a lighthouse at dusk", "aspect_ratio": ratio}
    assert result.size == produced


@pytest.mark.anyio
async def test_flux_3_1_quality_picks_the_mode(
    bfl: FakeBfl, http: httpx.AsyncClient, catalog: Catalog
) -> None:
    spec = catalog.with_enabled(["bfl/flux-3.1-image"]).get("bfl/flux-3.1-image")
    assert spec is not None
    request = ImageRequest(
        spec=spec,
        upstream_model="flux-3.1-image",
        prompt="a kite",
        n=1,
        timeout_seconds=10,
        quality="low",
        size="1792x1024",
    )
    await provider(bfl, http).generate(request)
    assert bfl.submits()[0].json == {
        "prompt": "a kite",
        "width": 1792,
        "height": 1024,
        "mode": "fast",
    }


@pytest.mark.anyio
async def test_a_seed_gives_n_reproducible_variations_and_the_seeds_come_back(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    result = await provider(bfl, http).generate(make_request(PRO, n=3, seed=4_294_967_293))
    sent = sorted(submit.json["seed"] for submit in bfl.submits())
    assert sent == [0, 4_294_967_293, 4_294_967_294]  # seed + i, within the accepted range
    assert result.extra["seeds"] == [4_294_967_293, 4_294_967_294, 0]  # in the order of data


@pytest.mark.anyio
async def test_without_a_seed_the_seeds_bfl_picked_are_reported(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    result = await provider(bfl, http).generate(make_request(PRO))
    assert "seed" not in bfl.submits()[0].json
    assert result.extra["seeds"] == [1001]


@pytest.mark.anyio
async def test_a_rewritten_prompt_comes_back_as_revised_prompt(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(revised_prompt="A red fox in soft morning light, photographed."))
    result = await provider(bfl, http).generate(make_request("bfl/flux-2-flex", prompt="fox"))
    assert result.images[0].revised_prompt == "A red fox in soft morning light, photographed."


# ------------------------------------------------------------------------------ fan-out


@pytest.mark.anyio
async def test_n_tasks_bounded_in_parallel(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.default = Accept(statuses=("Pending", "Pending", "Ready"))
    bounded = provider(bfl, http, max_parallel=2)
    result = await bounded.generate(make_request(PRO, n=4))
    assert len(result.images) == 4
    assert len(bfl.submits()) == 4
    assert bfl.max_active == 2


@pytest.mark.anyio
async def test_partial_failures_and_moderation_are_counted_not_hidden(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(
        Accept(),
        Accept(statuses=("Pending", "Content Moderated")),
        Accept(statuses=("Error",)),
        Accept(),
    )
    result = await provider(bfl, http, max_parallel=1).generate(make_request(PRO, n=4))
    assert len(result.images) == 2
    assert result.filtered == 1
    assert result.failed == 1


@pytest.mark.parametrize(
    ("status", "stage"), [("Request Moderated", "prompt"), ("Content Moderated", "image")]
)
@pytest.mark.anyio
async def test_moderation_of_every_image_is_a_content_policy_violation(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest, status: str, stage: str
) -> None:
    bfl.default = Accept(statuses=("Pending", status))
    with pytest.raises(ContentPolicyViolation) as caught:
        await provider(bfl, http).generate(make_request(PRO, n=2))
    assert caught.value.code == "content_policy_violation"
    assert caught.value.status == 400
    assert stage in caught.value.message
    assert bfl.downloads() == []


@pytest.mark.anyio
async def test_task_error_is_a_502_and_not_resubmitted(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.default = Accept(statuses=("Pending", "Error"))
    with pytest.raises(UpstreamError) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert caught.value.status == 502
    assert not caught.value.should_retry
    assert len(bfl.submits()) == 1


@pytest.mark.anyio
async def test_a_batch_with_an_ambiguous_failure_is_never_marked_retryable(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    # One submit was refused (429: safe to repeat), the other may have created a task (500):
    # the error raised must not invite a retry of the whole batch.
    bfl.enqueue(rate_limited(), server_error())
    with pytest.raises(GatewayError) as caught:
        await provider(bfl, http, max_parallel=1).generate(make_request(PRO, n=2))
    assert not caught.value.should_retry
    assert caught.value.status == 502


@pytest.mark.anyio
async def test_bfls_cost_of_the_delivered_images_is_the_upstream_cost(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(cost=4.5), Accept(statuses=("Content Moderated",)), Accept(cost=3))
    result = await provider(bfl, http, max_parallel=1).generate(make_request(PRO, n=3))
    assert len(result.images) == 2
    assert result.upstream_cost_usd == Decimal("0.075")  # credits of $0.01, delivered images


@pytest.mark.anyio
async def test_without_bfls_cost_the_cost_is_unknown(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(cost=float("nan")))
    result = await provider(bfl, http).generate(make_request(PRO))
    assert result.upstream_cost_usd is None


@pytest.mark.anyio
async def test_progress_reports_bfls_own_words_and_images_done(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.default = Accept(statuses=("Pending", "Pending", "Pending", "Ready"))
    reports: list[Progress] = []
    with watching(reports.append):
        await provider(bfl, http, max_parallel=1).generate(make_request(PRO, n=2))
    # The fake's Pending answers carry "progress": 0.5 (BFL's fraction done).
    pending = Progress(stage="Pending", percent=50.0)
    assert reports == [
        *[pending] * 3,
        Progress(stage="Ready"),
        Progress(images_done=1),
        *[pending] * 3,
        Progress(stage="Ready"),
        Progress(images_done=2),
    ]


# ------------------------------------------------------------------------------ submit errors


def _submit_errors() -> list[Any]:
    return [
        pytest.param(
            BflError(402, {"detail": "Insufficient credits"}), ServiceUnavailable, id="402"
        ),
        pytest.param(BflError(403, {"detail": "Forbidden"}), UpstreamAuthFailed, id="403"),
        pytest.param(BflError(404, {"detail": "Not Found"}), ModelUnavailable, id="404"),
        pytest.param(BflError(500, {"detail": "boom"}), UpstreamError, id="500"),
        pytest.param(BflError(503, {"detail": "unavailable"}), UpstreamError, id="503"),
        pytest.param(Raw(b"<html>oops</html>", 200, "text/html"), UpstreamBadResponse, id="html"),
        pytest.param(Raw(b'{"id": "x", "polling'), UpstreamBadResponse, id="malformed-json"),
        pytest.param(Raw(b'{"polling_url": "x"}'), UpstreamBadResponse, id="no-id"),
        pytest.param(Raw(b'{"id": "x"}'), UpstreamBadResponse, id="no-polling-url"),
        pytest.param(
            Raw(b'{"id": "x", "polling_url": "x"}', declared_length=10_000_000),
            UpstreamBadResponse,
            id="declared-huge",
        ),
        pytest.param(
            Raw(b'{"id": "x", "po', declared_length=400), UpstreamBadResponse, id="truncated"
        ),
        pytest.param(Hangup(), UpstreamError, id="hangup-after-sending"),
    ]


@pytest.mark.parametrize(("reply", "error"), _submit_errors())
@pytest.mark.anyio
async def test_submit_failures(
    bfl: FakeBfl,
    http: httpx.AsyncClient,
    make_request: MakeRequest,
    reply: Any,
    error: type[GatewayError],
) -> None:
    bfl.enqueue(reply)
    with pytest.raises(error) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert type(caught.value) is error
    assert not caught.value.should_retry  # none of these proves the task was not created
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.message
    assert len(bfl.submits()) == 1
    assert bfl.polls() == []


@pytest.mark.anyio
async def test_422_is_a_400_with_bfls_reason(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(
        BflError(
            422,
            {"detail": [{"loc": ["body", "prompt"], "msg": "String too long", "type": "x"}]},
        )
    )
    with pytest.raises(InvalidRequest) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert caught.value.status == 400
    assert "prompt: String too long" in caught.value.message


@pytest.mark.anyio
async def test_active_task_limit_is_a_429_with_retry_after(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(rate_limited(retry_after=7))
    with pytest.raises(RateLimited) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert caught.value.should_retry
    assert caught.value.retry_after == 7
    assert caught.value.headers["retry-after"] == "7"


@pytest.mark.anyio
async def test_retry_after_from_the_body_when_the_header_is_missing(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(BflError(429, {"error": "rate_limit_exceeded", "retry_after": 12}))
    with pytest.raises(RateLimited) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert caught.value.headers["retry-after"] == "12"


@pytest.mark.anyio
async def test_the_real_active_task_limit(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.active_limit = 2
    bfl.default = Accept(statuses=("Pending",) * 5 + ("Ready",))
    result = await provider(bfl, http, max_parallel=4).generate(make_request(PRO, n=4))
    assert len(result.images) == 2  # two tasks ran; BFL refused the others (nothing billed)
    assert result.failed == 2


@pytest.mark.anyio
async def test_unreachable_bfl_is_safe_to_retry(
    http: httpx.AsyncClient, make_request: MakeRequest, closed_port: int
) -> None:
    endpoint = Endpoint(httpx.URL(f"http://127.0.0.1:{closed_port}"), "bfl_key")
    with pytest.raises(UpstreamUnreachable) as caught:
        await BflProvider(http, endpoint, polling=FAST).generate(make_request(PRO))
    assert caught.value.should_retry


@pytest.mark.anyio
async def test_a_slow_submit_is_an_ambiguous_504(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Delay(3, Accept()))
    with pytest.raises(UpstreamTimeout) as caught:
        await provider(bfl, http).generate(make_request(PRO, timeout_seconds=1.2))
    assert "may still have been created and billed" in caught.value.message
    assert not caught.value.should_retry


# ------------------------------------------------------------------------------ polling


@pytest.mark.anyio
async def test_transient_poll_failures_are_polled_again(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(
        Accept(
            statuses=(
                BflError(502, {"detail": "bad gateway"}),
                rate_limited(retry_after=0),
                Hangup(),
                "Pending",
                "Ready",
            )
        )
    )
    result = await provider(bfl, http).generate(make_request(PRO))
    assert len(result.images) == 1
    assert len(bfl.submits()) == 1


@pytest.mark.anyio
async def test_polls_that_keep_failing_end_the_task(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(statuses=(BflError(503, {"detail": "down"}),)))
    with pytest.raises(UpstreamError) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert "5 times in a row" in caught.value.message
    assert len(bfl.submits()) == 1


@pytest.mark.parametrize(
    ("step", "mentions"),
    [
        (Raw(b"not json"), "not a JSON object"),
        (Raw(b'{"status": "Ready", "result": null}'), "without a result"),
        (Raw(b'{"status": "Ready", "result": {"sample": 42}}'), "no usable URL"),
        (Raw(b'{"status": "Exploded"}'), "unknown task status"),
        (Raw(b'{"status": "Pending"}', declared_length=50_000_000), "far larger"),
    ],
)
@pytest.mark.anyio
async def test_hostile_poll_answers_are_502_bad_response(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest, step: Raw, mentions: str
) -> None:
    bfl.enqueue(Accept(statuses=(step,)))
    with pytest.raises(UpstreamBadResponse) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert mentions in caught.value.message


@pytest.mark.anyio
async def test_task_not_found_is_a_502(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(statuses=("Task not found",)))
    with pytest.raises(UpstreamError, match="Task not found"):
        await provider(bfl, http).generate(make_request(PRO))


@pytest.mark.anyio
async def test_the_key_is_never_sent_to_a_polling_url_on_another_host(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(polling_url="http://localhost:9/v1/get_result?id=1"))
    with pytest.raises(UpstreamBadResponse, match="another host"):
        await provider(bfl, http).generate(make_request(PRO))
    assert bfl.polls() == []


@pytest.mark.anyio
async def test_a_task_still_pending_at_the_deadline_is_a_504_without_resubmitting(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.default = Accept(statuses=("Pending",))
    with pytest.raises(UpstreamTimeout) as caught:
        await provider(bfl, http).generate(make_request(PRO, timeout_seconds=1.2))
    assert "may still finish there and be billed" in caught.value.message
    assert len(bfl.submits()) == 1
    assert len(bfl.polls()) >= 2


@pytest.mark.anyio
async def test_a_task_that_would_start_too_late_is_not_submitted(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    # One slot: the second image waits for the first, which is still pending at the deadline.
    bfl.default = Accept(statuses=("Pending",))
    with pytest.raises(UpstreamTimeout) as caught:
        await provider(bfl, http, max_parallel=1).generate(
            make_request(PRO, n=2, timeout_seconds=1.5)
        )
    assert len(bfl.submits()) == 1
    # Both images missing: the error names the one that may be billed.
    assert "may still finish there and be billed" in caught.value.message


@pytest.mark.anyio
async def test_no_submit_without_time_to_see_it_through(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    with pytest.raises(UpstreamTimeout, match="was not submitted"):
        await provider(bfl, http).generate(make_request(PRO, timeout_seconds=0.5))
    assert bfl.requests == []


# ------------------------------------------------------------------------------ downloads


@pytest.mark.anyio
async def test_an_expired_image_link_is_a_502(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.sample_ttl = -1.0  # expired as soon as it is handed out
    with pytest.raises(UpstreamError) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert type(caught.value) is UpstreamError
    assert "HTTP 403" in caught.value.message
    assert "sig=" not in caught.value.message  # the signed link is never repeated
    assert len(bfl.submits()) == 1


@pytest.mark.anyio
async def test_a_failing_download_is_tried_again(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    bfl.enqueue(Accept(download=(BflError(503), Hangup(), Image())))
    result = await provider(bfl, http).generate(make_request(PRO))
    assert len(result.images) == 1
    assert len(bfl.downloads()) == 3


@pytest.mark.parametrize(
    ("step", "mentions"),
    [
        (Raw(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, declared_length=5_000_000_000), "5,000,000,000"),
        (Raw(b"\xff\xd8\xff" + b"\x00" * 100, declared_length=50_000), "cut short"),
        (Raw(b"<html>an error page</html>", content_type="text/html"), "not a PNG, JPEG or WebP"),
    ],
)
@pytest.mark.anyio
async def test_hostile_downloads_are_502_bad_response(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest, step: Raw, mentions: str
) -> None:
    bfl.enqueue(Accept(download=(step,)))
    with pytest.raises(UpstreamBadResponse) as caught:
        await provider(bfl, http).generate(make_request(PRO))
    assert mentions in caught.value.message


@pytest.mark.anyio
async def test_an_image_over_the_limit_is_refused_while_streaming(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    small = Polling(first_delay=0.01, max_delay=0.05, max_image_bytes=1000)
    with pytest.raises(UpstreamBadResponse, match="over the gateway's limit of 1,000 bytes"):
        await provider(bfl, http, polling=small).generate(make_request(PRO, output_format="png"))


@pytest.mark.anyio
async def test_the_operators_answer_cap_bounds_the_sample_download_too(
    bfl: FakeBfl, http: httpx.AsyncClient, make_request: MakeRequest
) -> None:
    # IMAGEGW_UPSTREAM_MAX_ANSWER_BYTES, as validation puts it on the request: the download of
    # the sample is an upstream answer like any other (the polling default is 64 MiB).
    request = make_request(PRO, output_format="png", max_answer_bytes=1000)
    with pytest.raises(UpstreamBadResponse, match="over the gateway's limit of 1,000 bytes"):
        await provider(bfl, http).generate(request)


def test_only_image_links_like_bfls_are_followed() -> None:
    https_api = httpx.URL("https://api.bfl.ai")
    assert trusted_sample_url(
        "https://bfldeliveryprod.blob.core.windows.net/x.png?sig=1", https_api
    )
    for link in ("http://bfl.example/sample.png", "file:///etc/passwd", "", None, "https://"):
        with pytest.raises(UntrustedUrl):
            trusted_sample_url(link, https_api)
    # Plain http only where the endpoint itself is plain http (a test double, a private proxy).
    assert trusted_sample_url("http://127.0.0.1:9/x.png", httpx.URL("http://127.0.0.1:8"))


def test_only_polling_urls_of_the_endpoint_or_bfl_get_the_key() -> None:
    https_api = httpx.URL("https://api.bfl.ai")
    assert trusted_polling_url("https://api.eu2.bfl.ai/v1/get_result?id=1", https_api)
    for link in (
        "http://api.bfl.ai/v1/get_result?id=1",
        "https://api.bfl.ai.evil.example/v1/get_result",
        "https://evil.example/v1/get_result",
    ):
        with pytest.raises(UntrustedUrl):
            trusted_polling_url(link, https_api)
    proxy = httpx.URL("https://proxy.test/bfl")
    assert trusted_polling_url("https://proxy.test/v1/get_result?id=1", proxy)
    with pytest.raises(UntrustedUrl):
        trusted_polling_url("https://api.bfl.ai/v1/get_result?id=1", proxy)


# ------------------------------------------------------------------------------ build


def test_build_reads_key_region_and_base_url(http: httpx.AsyncClient) -> None:
    settings = Settings()
    default = build_provider("bfl", {"api_key": "bfl_k"}, settings, http)
    assert isinstance(default, BflProvider)
    assert str(default.endpoint.base_url) == "https://api.bfl.ai/"
    eu = build_provider("bfl", {"api_key": "bfl_k", "region": "eu"}, settings, http)
    assert isinstance(eu, BflProvider)
    assert eu.endpoint.base_url.host == "api.eu.bfl.ai"
    us = build_provider("bfl", {"api_key": "bfl_k", "region": "us"}, settings, http)
    assert isinstance(us, BflProvider)
    assert us.endpoint.base_url.host == "api.us.bfl.ai"
    proxied = build_provider(
        "bfl",
        {"api_key": "bfl_k", "region": "eu", "base_url": "https://proxy.test/bfl/v1/"},
        settings,
        http,
    )
    assert isinstance(proxied, BflProvider)
    assert str(proxied.endpoint.submit_url("flux-2-pro")) == "https://proxy.test/bfl/v1/flux-2-pro"


@pytest.mark.parametrize(
    ("config", "mentions"),
    [
        ({}, "BFL_API_KEY"),
        ({"api_key": "  "}, "BFL_API_KEY"),
        ({"api_key": "k", "region": "mars"}, "global, eu, us"),
        ({"api_key": "k", "base_url": "ftp://x"}, "BFL_BASE_URL"),
    ],
)
def test_build_refuses_a_config_that_cannot_serve(
    http: httpx.AsyncClient, config: dict[str, str], mentions: str
) -> None:
    with pytest.raises(ProviderNotConfigured, match=mentions):
        build_provider("bfl", config, Settings(), http)


def test_fake_checks_bodies_like_bfl() -> None:
    from support.fake_bfl import Refused, check_body

    with pytest.raises(Refused):
        check_body("flux-2-pro", {"prompt": "x", "n": 2})
    with pytest.raises(Refused):
        check_body("flux-pro-1.1", {"prompt": "x", "width": 1536, "height": 1024})
    with pytest.raises(Refused):
        check_body("flux-3-image", {"prompt": "x", "aspect_ratio": "7:4"})
    assert check_body("flux-2-pro", {"prompt": "x", "width": 1792, "height": 1024}) == (1792, 1024)
    assert json.dumps(check_body("flux-pro-1.1-ultra", {"prompt": "x", "aspect_ratio": "16:9"}))
