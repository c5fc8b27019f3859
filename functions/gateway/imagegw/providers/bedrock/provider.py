"""The bedrock provider: Stability's generators through ``bedrock-runtime`` ``InvokeModel``.

Calls are signed with the process's own AWS credentials (the function's role on Lambda): there is
no key to configure, only the Region of the Bedrock endpoint. The client is made the standard way
(``aws_clients.client``), so botocore's own settings apply, ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``
included (tests, VPC endpoints). botocore's own retries are off: it would repeat a throttled call
or a 5xx on its own, and the second may be billed; the gateway's retry policy decides instead.

boto3 is synchronous, so each call runs in a thread of the provider's own pool, never on the event
loop. ``n`` images are ``n`` calls (one image per call), bounded and under the request's deadline
(``fanout``). At the deadline the caller gets its answer; a call still in its thread is abandoned
and ends at botocore's read timeout (the configured upstream timeout), its result discarded.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imagegw.aws import clients as aws_clients
from imagegw.errors import (
    GatewayError,
    ProviderNotConfigured,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers import aspect_ratios, fanout
from imagegw.providers.base import ImageProvider, ImageRequest, ImageResult
from imagegw.providers.bedrock.errors import CONTENT_POLICY_MESSAGE, translate_error
from imagegw.providers.bedrock.image_services import INPAINT_TASK, TASKS, inpaint_body
from imagegw.providers.bedrock.invoke import invoke_body, parse_answer
from imagegw.providers.dimensions import image_format, size

MAX_PARALLEL_CALLS = 4
# Threads of the pool: more than one request's parallel calls, so that calls abandoned at a
# deadline (still waiting on their socket) do not hold up the next request.
POOL_THREADS = 16
# An answer is one base64 image of about a megapixel (2-4 MB); anything far larger is not one.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


class BedrockProvider(ImageProvider):
    def __init__(
        self,
        region: str,
        *,
        read_timeout_seconds: float,
        connect_timeout_seconds: float = 10.0,
        max_parallel_calls: int = MAX_PARALLEL_CALLS,
    ) -> None:
        self.region = region
        self._read_timeout = read_timeout_seconds
        self._connect_timeout = connect_timeout_seconds
        self._max_parallel = max_parallel_calls
        self._pool = ThreadPoolExecutor(
            max_workers=max(POOL_THREADS, max_parallel_calls), thread_name_prefix="bedrock"
        )
        self._client: Any = None
        self._client_lock = threading.Lock()

    async def generate(self, request: ImageRequest) -> ImageResult:
        spec = request.spec
        choice: aspect_ratios.RatioChoice | None = None
        if spec.upstream_option("task") == INPAINT_TASK:
            # An Image Services edit: the output keeps the input's size, so no aspect ratio.
            # Converting the mask is CPU work: off the event loop.
            body = await asyncio.to_thread(inpaint_body, request)
        else:
            choice = _ratio(request)
            body = invoke_body(request, choice)
        loop = asyncio.get_running_loop()
        model = request.upstream_model

        async def one_image(seconds_left: float) -> fanout.Slot:
            try:
                call = loop.run_in_executor(self._pool, self._invoke, model, body)
            except RuntimeError as exc:  # the pool was shut down: this provider was replaced
                raise UpstreamUnreachable(
                    "The Bedrock client was being replaced; the request was not sent."
                ) from exc
            return parse_answer(await call)

        calls = await fanout.fan_out(
            request.n, request.timeout_seconds, self._max_parallel, one_image
        )
        collected = fanout.collect(
            calls,
            n=request.n,
            too_slow=lambda: _too_slow(request),
            filtered_message=CONTENT_POLICY_MESSAGE,
        )
        images = collected.images
        found = size(images[0].b64())
        extra: dict[str, Any] = {"aspect_ratio": choice.aspect_ratio} if choice else {}
        if any(seed is not None for seed in collected.seeds):
            extra["seeds"] = collected.seeds
        return ImageResult(
            images=images,
            size=found or (choice.nominal if choice else None),
            output_format=image_format(images[0].b64()),
            filtered=len(collected.filter_reasons),
            failed=len(collected.failures),
            extra=extra,
        )

    # ------------------------------------------------------------------ in a pool thread

    def _runtime_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                from botocore.config import Config

                config = Config(
                    connect_timeout=self._connect_timeout,
                    read_timeout=self._read_timeout,
                    retries={"mode": "standard", "total_max_attempts": 1},
                    max_pool_connections=POOL_THREADS,
                )
                try:
                    self._client = aws_clients.client(
                        "bedrock-runtime", region_name=self.region, config=config
                    )
                except ValueError as exc:  # botocore: an invalid endpoint URL or Region
                    raise ProviderNotConfigured(
                        f"The bedrock-runtime client cannot be created for {self.region}: "
                        f"{str(exc)[:200]}"
                    ) from None
            return self._client

    def _invoke(self, model: str, body: bytes) -> bytes:
        """One ``InvokeModel`` call; every failure leaves as a ``GatewayError``."""
        import botocore.exceptions as boto

        client = self._runtime_client()
        try:
            response = client.invoke_model(
                modelId=model,
                body=body,
                contentType="application/json",
                accept="application/json",
            )
            return _read_capped(response["body"])
        except boto.ClientError as exc:
            error = exc.response.get("Error", {})
            metadata = exc.response.get("ResponseMetadata", {})
            raise translate_error(
                str(error.get("Code") or ""),
                int(metadata.get("HTTPStatusCode") or 0),
                str(error.get("Message") or ""),
                {str(k).lower(): str(v) for k, v in metadata.get("HTTPHeaders", {}).items()},
                model=model,
                region=self.region,
            ) from None
        except (boto.NoCredentialsError, boto.PartialCredentialsError) as exc:
            raise ProviderNotConfigured(
                "The gateway has no AWS credentials to call Amazon Bedrock with (the "
                "function's role on Lambda; AWS_PROFILE or AWS_ACCESS_KEY_ID locally)."
            ) from exc
        except boto.ReadTimeoutError as exc:
            raise UpstreamTimeout(
                "Amazon Bedrock did not answer in time. The image may still have been generated "
                "and billed, so the gateway does not retry on its own."
            ) from exc
        except boto.ConnectionError as exc:
            # Could not connect (or the TLS handshake failed): nothing was sent.
            raise UpstreamUnreachable(
                "The gateway could not connect to Amazon Bedrock; the request was not sent."
            ) from exc
        except (boto.ResponseStreamingError, boto.IncompleteReadError) as exc:
            raise UpstreamBadResponse("Amazon Bedrock's answer was cut short.") from exc
        except boto.BotoCoreError as exc:
            raise UpstreamError(
                "The connection to Amazon Bedrock failed while the request was in flight. The "
                "image may still have been generated, so the gateway does not retry on its own."
            ) from exc

    async def aclose(self) -> None:
        # Threads still waiting on an abandoned call end at their read timeout, on their own.
        self._pool.shutdown(wait=False)


def _read_capped(stream: Any) -> bytes:
    """The answer's bytes, refused past MAX_ANSWER_BYTES; a short body raises (botocore checks
    the declared length when a read comes back empty)."""
    pieces: list[bytes] = []
    total = 0
    try:
        while chunk := stream.read(_READ_CHUNK):
            total += len(chunk)
            if total > MAX_ANSWER_BYTES:
                raise UpstreamBadResponse(
                    f"Amazon Bedrock answered with more than {MAX_ANSWER_BYTES} bytes: not one "
                    "image."
                )
            pieces.append(chunk)
    finally:
        stream.close()
    return b"".join(pieces)


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
