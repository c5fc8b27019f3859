"""In-process fakes for the api layer (providers are faked at the protocol level elsewhere)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from imagegw.errors import GatewayError
from imagegw.providers.base import GeneratedImage, ImageProvider, ImageRequest, ImageResult

# 2026-11-22 12:00:00 UTC: the date the catalog's shutdown dates are judged against.
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC).timestamp()

# A real 1x1 PNG.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4e50000000049454e44ae426082"
)


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeProvider(ImageProvider):
    """Records every request; answers with ``result`` (a callable of the request) or raises."""

    def __init__(
        self,
        result: Callable[[ImageRequest], ImageResult] | None = None,
        error: GatewayError | None = None,
    ) -> None:
        self.requests: list[ImageRequest] = []
        self._result = result or (
            lambda request: ImageResult(
                images=[
                    GeneratedImage(media_type="image/png", data=TINY_PNG) for _ in range(request.n)
                ],
                size="1024x1024",
                quality="high",
                background="opaque",
                output_format="png",
                usage={"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
            )
        )
        self._error = error

    async def generate(self, request: ImageRequest) -> ImageResult:
        self.requests.append(request)
        if self._error is not None:
            raise self._error
        return self._result(request)
