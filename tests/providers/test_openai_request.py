"""The exact request OpenAIProvider puts on the wire, captured with httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
import pytest

from imagegw.catalog import Catalog
from imagegw.providers.base import ImageRequest
from imagegw.providers.openai import OpenAIProvider
from providers.conftest import TODAY, UPSTREAM_KEY, MakeRequest

BASE_URL = "https://api.example.test/v1"


class Capture:
    """A MockTransport handler that records requests and answers like OpenAI."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        images = [{"b64_json": "iVBORw0KGgo="} for _ in range(body["n"])]
        return httpx.Response(200, json={"created": 1, "data": images})

    @property
    def only(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


async def send(
    request: ImageRequest, *, base_url: str = BASE_URL, organization: str | None = None
) -> Capture:
    capture = Capture()
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
        provider = OpenAIProvider(
            http, api_key=UPSTREAM_KEY, base_url=base_url, organization=organization
        )
        await provider.generate(request)
    return capture


@pytest.mark.anyio
async def test_every_accepted_parameter_is_sent_as_given(make_request: MakeRequest) -> None:
    request = make_request(
        "openai/gpt-image-1.5",
        prompt="a red fox in snow",
        n=3,
        size="1024x1536",
        quality="high",
        background="transparent",
        output_format="webp",
        output_compression=70,
        moderation="low",
        user="user-1",
        safety_identifier="safety-1",
    )
    sent = (await send(request)).only

    assert sent.method == "POST"
    assert str(sent.url) == "https://api.example.test/v1/images/generations"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "model": "gpt-image-1.5",
        "prompt": "a red fox in snow",
        "n": 3,
        "size": "1024x1536",
        "quality": "high",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 70,
        "moderation": "low",
        "user": "user-1",
        "safety_identifier": "safety-1",
    }


@pytest.mark.anyio
async def test_parameters_not_given_are_not_sent(make_request: MakeRequest) -> None:
    sent = (await send(make_request("openai/gpt-image-1.5", prompt="a cat"))).only
    assert json.loads(sent.content) == {"model": "gpt-image-1.5", "prompt": "a cat", "n": 1}
    assert "openai-organization" not in sent.headers


@pytest.mark.anyio
async def test_organization_header_is_sent_when_configured(make_request: MakeRequest) -> None:
    sent = (await send(make_request(), organization="org-test123")).only
    assert sent.headers["openai-organization"] == "org-test123"


@pytest.mark.anyio
async def test_prompt_goes_out_as_utf8_json(make_request: MakeRequest) -> None:
    prompt = 'Ein Bär im Schnee, 雪の中の熊 🐻, "quoted" \\ back'
    sent = (await send(make_request(prompt=prompt))).only
    # Not ASCII-escaped: the raw bytes carry the UTF-8 text, and it parses back exactly.
    assert "Bär".encode() in sent.content
    assert "🐻".encode() in sent.content
    assert json.loads(sent.content.decode("utf-8"))["prompt"] == prompt
    assert int(sent.headers["content-length"]) == len(sent.content)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.example.test/v1", "https://api.example.test/v1/images/generations"),
        ("https://api.example.test/v1/", "https://api.example.test/v1/images/generations"),
        (
            "https://myres.openai.example.test/openai/deployments/img/v1",
            "https://myres.openai.example.test/openai/deployments/img/v1/images/generations",
        ),
        (
            "http://127.0.0.1:9/compat/api/v1/",
            "http://127.0.0.1:9/compat/api/v1/images/generations",
        ),
    ],
)
async def test_url_is_images_generations_under_the_base_url(
    make_request: MakeRequest, base_url: str, expected: str
) -> None:
    sent = (await send(make_request(), base_url=base_url)).only
    assert str(sent.url) == expected


@pytest.mark.anyio
async def test_response_format_is_never_sent_to_gpt_image_models(
    catalog: Catalog, make_request: MakeRequest
) -> None:
    gpt_image = [
        spec
        for spec in catalog
        if spec.provider == "openai" and spec.upstream_model.startswith(("gpt-image", "chatgpt"))
    ]
    assert len(gpt_image) >= 7  # the catalog's GPT image family is all here
    for spec in gpt_image:
        if spec.is_retired(TODAY):
            continue  # retired: never reaches a provider
        sent = (await send(make_request(spec.id))).only
        body = json.loads(sent.content)
        assert "response_format" not in body, spec.id
        assert body["model"] == spec.upstream_model


@pytest.mark.anyio
async def test_dalle_is_asked_for_base64(catalog: Catalog) -> None:
    # Retired models never reach the provider through the service, but the provider contract
    # still holds for a DALL-E-shaped upstream (forwards_response_format).
    spec = catalog.get("openai/dall-e-3")
    assert spec is not None
    request = ImageRequest(
        spec=spec,
        upstream_model="dall-e-3",
        prompt="a watercolour boat",
        n=1,
        timeout_seconds=10,
        size="1024x1792",
        quality="hd",
        style="natural",
    )
    sent = (await send(request)).only
    assert json.loads(sent.content) == {
        "model": "dall-e-3",
        "prompt": "a watercolour boat",
        "n": 1,
        "size": "1024x1792",
        "quality": "hd",
        "style": "natural",
        "response_format": "b64_json",
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("requested", "upstream"),
    [
        ("openai/gpt-image-2-2026-04-21", "gpt-image-2-2026-04-21"),
        ("gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-flare-2026-09-08"),
        ("gpt-image-2", "gpt-image-2"),
        ("openai/gpt-image-2.6-sunburst", "gpt-image-2.6-sunburst"),
    ],
)
async def test_model_is_the_upstream_id_and_snapshots_stay_pinned(
    make_request: MakeRequest, requested: str, upstream: str
) -> None:
    sent = (await send(make_request(requested))).only
    assert json.loads(sent.content)["model"] == upstream


@pytest.mark.anyio
async def test_gpt_image_2_5_complexity_and_free_size_are_forwarded(
    make_request: MakeRequest,
) -> None:
    request = make_request(
        "openai/gpt-image-2.5-sunburst", size="2048x1152", quality="xhigh", complexity="high"
    )
    body = json.loads((await send(request)).only.content)
    assert body["size"] == "2048x1152"
    assert body["quality"] == "xhigh"
    assert body["complexity"] == "high"


@pytest.mark.anyio
async def test_request_timeout_is_the_request_budget(make_request: MakeRequest) -> None:
    sent = (await send(make_request(timeout_seconds=42.0))).only
    timeout = sent.extensions["timeout"]
    assert timeout["read"] == 42.0
    assert timeout["write"] == 42.0
    # Connecting gets the provider's connect timeout (10 s default), never more than the budget.
    assert timeout["connect"] == 10.0

    short = (await send(make_request(timeout_seconds=0.5))).only
    assert short.extensions["timeout"]["connect"] == 0.5
