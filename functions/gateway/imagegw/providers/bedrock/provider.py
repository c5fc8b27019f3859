"""The bedrock provider: Stability's generators through ``bedrock-runtime`` ``InvokeModel``.

Calls are signed with the process's own AWS credentials (the function's role on Lambda): there is
no key to configure, only the Region of the Bedrock endpoint. ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``
(or ``AWS_ENDPOINT_URL``) replaces the endpoint, as it would for botocore (tests, VPC endpoints).

The call is the REST request botocore would make (``POST /model/{modelId}/invoke``), signed
with botocore's SigV4 signer (``aws.signed_http``) but sent over the gateway's shared HTTP
client, so that Bedrock's answers are read under the same rules as every other upstream's
(issue 12): the answer capped at what one image can legitimately be (``answer_limit``), error
bodies included, read as they arrive, never sized from what the upstream declares, and parsed
with the gateway's total JSON readers. Nothing is repeated here: the retry wrapper repeats only
what cannot bill twice (a refused connection, a throttle), and an answer that is cut short, too
slow or malformed may hide a billed image.

``n`` images are ``n`` calls (one image per call), bounded and under the request's deadline
(``fanout``); at the deadline a call still running is cancelled and its connection dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from imagegw.aws.signed_http import SigV4Signer, endpoint_url
from imagegw.errors import (
    GatewayError,
    ProviderNotConfigured,
    UpstreamTimeout,
)
from imagegw.providers import aspect_ratios, exchange, fanout
from imagegw.providers.base import (
    ImageProvider,
    ImageRequest,
    ImageResult,
    answer_limit,
    json_body,
)
from imagegw.providers.bedrock.errors import CONTENT_POLICY_MESSAGE, error_of_answer
from imagegw.providers.bedrock.image_services import INPAINT_TASK, TASKS, inpaint_document
from imagegw.providers.bedrock.invoke import invoke_document, parse_answer

MAX_PARALLEL_CALLS = 4
# The service name in the signature's scope (bedrock-runtime signs as "bedrock").
SIGNING_NAME = "bedrock"
_JSON = "application/json"


def default_endpoint(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


class BedrockProvider(ImageProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        region: str,
        *,
        endpoint: str | None = None,
        credentials: Any = None,
        connect_timeout_seconds: float = 10.0,
        max_parallel_calls: int = MAX_PARALLEL_CALLS,
    ) -> None:
        """``endpoint`` None: Bedrock's for ``region``, or the environment's override.
        ``credentials`` (botocore's) None: the process's, found the standard way."""
        self.region = region
        self._http = http
        self._endpoint = _checked_endpoint(
            endpoint or endpoint_url("BEDROCK_RUNTIME", default_endpoint(region))
        )
        self._signer = SigV4Signer(
            SIGNING_NAME, region, credentials=credentials, service_name="Amazon Bedrock"
        )
        self._connect_timeout = connect_timeout_seconds
        self._max_parallel = max_parallel_calls

    async def generate(self, request: ImageRequest) -> ImageResult:
        spec = request.spec
        choice: aspect_ratios.RatioChoice | None = None
        if spec.upstream_option("task") == INPAINT_TASK:
            # An Image Services edit: the output keeps the input's size, so no aspect ratio.
            # Converting the mask is CPU work: off the event loop.
            document = await asyncio.to_thread(inpaint_document, request)
        else:
            choice = _ratio(request)
            document = invoke_document(request, choice)
        body = json_body(document)
        model = request.upstream_model
        # The model id is one path segment: its ":" (and anything else) percent-encoded, as
        # botocore encodes it (and signs it encoded once more).
        url = f"{self._endpoint}/model/{quote(model, safe='')}/invoke"
        # One image per call: the cap is one image's worth.
        limit = answer_limit(request, images=1)

        async def one_image(index: int, seconds_left: float) -> fanout.Slot:
            seed = fanout.variation_seed(request.seed, index)
            own = body if seed == request.seed else json_body({**document, "seed": seed})
            content = await self._invoke(url, own, model, seconds_left, limit)
            return parse_answer(content)

        return await fanout.one_call_per_image(
            request,
            self._max_parallel,
            one_image,
            choice=choice,
            too_slow=lambda: _too_slow(request),
            filtered_message=CONTENT_POLICY_MESSAGE,
        )

    async def _invoke(
        self, url: str, body: bytes, model: str, seconds_left: float, limit: int
    ) -> bytearray:
        """One ``InvokeModel`` call; every failure leaves as a ``GatewayError``."""
        headers = await self._signer.headers(
            "POST", url, body, {"Content-Type": _JSON, "Accept": _JSON}
        )
        response, content = await exchange.post(
            self._http,
            url,
            content=body,
            headers=headers,
            connect_timeout=self._connect_timeout,
            max_bytes=limit,
            seconds_left=seconds_left,
            upstream="Amazon Bedrock",
        )
        if response.status_code != 200:
            raise error_of_answer(
                response.status_code, content, response.headers, model=model, region=self.region
            )
        return content


def _checked_endpoint(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ProviderNotConfigured(
            f"The Amazon Bedrock endpoint {url[:80]!r} is not an http(s) URL "
            "(AWS_ENDPOINT_URL_BEDROCK_RUNTIME or AWS_ENDPOINT_URL)."
        )
    return url.rstrip("/")


def _ratio(request: ImageRequest) -> aspect_ratios.RatioChoice:
    """The aspect ratio of a generator's call (its catalog entry says how sizes map)."""
    spec = request.spec
    table = spec.upstream_option("size_table")
    if spec.upstream_option("api") != "invoke_model" or table not in aspect_ratios.SIZE_TABLES:
        raise ProviderNotConfigured(
            f"The catalog entry of `{spec.id}` does not say how to reach it: it needs "
            "upstream_options.api = 'invoke_model' and either upstream_options.size_table = "
            f"one of {', '.join(aspect_ratios.SIZE_TABLES)} or upstream_options.task = one of "
            f"{', '.join(TASKS)}."
        )
    return aspect_ratios.choose(
        table, request.size or spec.default_size or "1024x1024", model_id=spec.id
    )


def _too_slow(request: ImageRequest) -> GatewayError:
    return UpstreamTimeout(
        f"Amazon Bedrock did not answer within {request.timeout_seconds:g} seconds. The image "
        "may still have been generated upstream, so the gateway does not retry on its own."
    )
