"""The stability provider: Stability AI's own REST API (v2beta), over the shared HTTP client.

Generators (``/v2beta/stable-image/generate/{ultra,core,sd3}``, image-to-image edits there too)
and the inpainting service (``/v2beta/stable-image/edit/inpaint``: an image and its mask, an
edit-only model in the catalog).

One image per call: ``n`` images are ``n`` calls, bounded and under the request's deadline
(``fanout``), each a multipart POST with ``accept: application/json`` (base64 back, as every other
upstream). Nothing is repeated here: the retry wrapper repeats only what cannot bill twice.
"""

from __future__ import annotations

import asyncio

import httpx

import imagegw.providers.stability.multipart as multipart
from imagegw.errors import (
    GatewayError,
    ProviderNotConfigured,
    UpstreamTimeout,
)
from imagegw.providers import aspect_ratios, exchange, fanout
from imagegw.providers.base import ImageProvider, ImageRequest, ImageResult, answer_limit
from imagegw.providers.stability.translation import (
    CONTENT_POLICY_MESSAGE,
    INPAINT_ENDPOINT,
    edit_files,
    form_fields,
    inpaint_fields,
    inpaint_files,
    parse_answer,
    translate_error,
)

DEFAULT_BASE_URL = "https://api.stability.ai"
MAX_PARALLEL_CALLS = 4
ENDPOINTS = ("ultra", "core", "sd3")


class StabilityProvider(ImageProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout_seconds: float = 10.0,
        max_parallel_calls: int = MAX_PARALLEL_CALLS,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._connect_timeout = connect_timeout_seconds
        self._max_parallel = max_parallel_calls

    async def generate(self, request: ImageRequest) -> ImageResult:
        spec = request.spec
        endpoint = spec.upstream_option("endpoint")
        if endpoint == INPAINT_ENDPOINT:
            # An edit service: the output keeps the input's size, so no aspect ratio.
            choice = None
            url = f"{self._base_url}/v2beta/stable-image/edit/{endpoint}"
            fields = inpaint_fields(request)
            # Decoding and re-encoding the mask is CPU work: off the event loop.
            files = await asyncio.to_thread(inpaint_files, request)
        else:
            choice = self._ratio(request)
            url = f"{self._base_url}/v2beta/stable-image/generate/{endpoint}"
            fields = form_fields(request, choice, str(endpoint))
            files = edit_files(request)
        # One image per call: the cap is one image's worth (or the operator's setting).
        limit = answer_limit(request, images=1)

        async def one_image(index: int, seconds_left: float) -> fanout.Slot:
            seed = fanout.variation_seed(request.seed, index)
            own = fields if seed == request.seed else {**fields, "seed": str(seed)}
            # A fresh boundary per call (one that none of the parts contains).
            body, content_type = multipart.encode(own, files)
            content = await self._post(url, body, content_type, seconds_left, limit)
            return parse_answer(content)

        return await fanout.one_call_per_image(
            request,
            self._max_parallel,
            one_image,
            choice=choice,
            too_slow=lambda: _too_slow(request),
            filtered_message=CONTENT_POLICY_MESSAGE,
        )

    def _ratio(self, request: ImageRequest) -> aspect_ratios.RatioChoice:
        spec = request.spec
        endpoint = spec.upstream_option("endpoint")
        table = spec.upstream_option("size_table")
        if endpoint not in ENDPOINTS or table not in aspect_ratios.SIZE_TABLES:
            raise ProviderNotConfigured(
                f"The catalog entry of `{spec.id}` does not say how to reach it: it needs "
                f"upstream_options.endpoint (one of {', '.join(ENDPOINTS)}, or "
                f"{INPAINT_ENDPOINT}) and upstream_options.size_table (one of "
                f"{', '.join(aspect_ratios.SIZE_TABLES)})."
            )
        return aspect_ratios.choose(
            table, request.size or spec.default_size or "1024x1024", model_id=spec.id
        )

    async def _post(
        self, url: str, body: bytes, content_type: str, seconds_left: float, limit: int
    ) -> bytearray:
        response, content = await exchange.post(
            self._http,
            url,
            content=body,
            headers={**self._headers, "Content-Type": content_type},
            connect_timeout=self._connect_timeout,
            max_bytes=limit,
            seconds_left=seconds_left,
            upstream="Stability AI",
        )
        if response.status_code != 200:
            raise translate_error(response.status_code, content, response.headers)
        return content


def _too_slow(request: ImageRequest) -> GatewayError:
    return UpstreamTimeout(
        f"Stability AI did not answer within {request.timeout_seconds:g} seconds. The image "
        "may still have been generated upstream, so the gateway does not retry on its own."
    )
