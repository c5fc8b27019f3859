"""A small client for any OpenAI-compatible images API, and for the gateway's async jobs.

The key goes only to the API's own origin: image links (presigned S3 URLs, the gateway's
signed local links) are fetched without it, as a browser would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
# Generations routinely take a minute or more; connecting should not.
TIMEOUT = httpx.Timeout(600.0, connect=10.0)


class ApiError(Exception):
    """An error answer, kept in OpenAI's shape: what the API said, not a rewording."""

    def __init__(
        self,
        status: int,
        error: dict[str, Any],
        *,
        request_id: str | None = None,
        retry: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(str(error.get("message") or f"HTTP {status}"))
        self.status = status
        self.error = error
        self.request_id = request_id
        self.retry = retry
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.error.get("message") or f"HTTP {self.status}")

    def describe(self) -> str:
        # A failed job's error came in a 200 answer: it has no HTTP status of its own (0).
        parts = [f"{self.status}", self.message] if self.status else [self.message]
        if self.error.get("param"):
            parts.append(f"(param: {self.error['param']})")
        if self.error.get("code"):
            parts.append(f"[{self.error['code']}]")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " ".join(parts)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def request_id(self) -> str | None:
        value = self.headers.get("x-request-id")
        return str(value) if value is not None else None


def _error_from(response: httpx.Response) -> ApiError:
    error: dict[str, Any]
    try:
        parsed = response.json()
        error = parsed["error"] if isinstance(parsed.get("error"), dict) else {}
    except (ValueError, AttributeError):
        error = {}
    if not error:
        text = response.text.strip()[:200] or response.reason_phrase
        error = {"message": f"HTTP {response.status_code}: {text}", "type": None, "param": None}
    retry_after = response.headers.get("retry-after")
    should_retry = response.headers.get("x-should-retry")
    return ApiError(
        response.status_code,
        error,
        request_id=response.headers.get("x-request-id"),
        # OpenAI's rule: the server's x-should-retry wins; else 408/409/429/5xx.
        retry=should_retry == "true"
        if should_retry is not None
        else response.status_code in (408, 409, 429) or response.status_code >= 500,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


class ImagesClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._origin = _origin(self.base_url)
        # No proxies from the environment for the API itself would surprise users; httpx's
        # defaults (trust_env) stay.
        self._http = httpx.AsyncClient(timeout=TIMEOUT, transport=transport)

    async def __aenter__(self) -> ImagesClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"accept": "application/json", **(extra or {})}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _call(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        content = None if body is None else json.dumps(body).encode("utf-8")
        extra = {**(headers or {})}
        if content is not None:
            extra["content-type"] = "application/json"
        response = await self._http.request(
            method, self.base_url + path, content=content, headers=self._headers(extra)
        )
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            parsed = response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code,
                {"message": "The answer is not JSON.", "type": None, "param": None},
                request_id=response.headers.get("x-request-id"),
            ) from exc
        if not isinstance(parsed, dict):
            raise ApiError(
                response.status_code,
                {"message": "The answer is not a JSON object.", "type": None, "param": None},
            )
        return Answer(response.status_code, parsed, response.headers)

    async def models(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/models")
        data = answer.body.get("data")
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    async def generate(
        self,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        respond_async: bool = False,
    ) -> Answer:
        """POST /images/generations; with ``respond_async`` a 202 job or, if the server does
        not queue jobs, the synchronous 200 answer (RFC 7240 lets it ignore the preference)."""
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        if respond_async:
            headers["prefer"] = "respond-async"
        return await self._call("POST", "/images/generations", body=body, headers=headers)

    async def job(self, job_id: str) -> dict[str, Any]:
        return (await self._call("GET", f"/images/jobs/{job_id}")).body

    async def download(self, url: str) -> bytes:
        """An image link; the key is sent only when the link is the API's own origin."""
        headers = self._headers() if _origin(url) == self._origin else {}
        headers.pop("accept", None)
        response = await self._http.get(url, headers=headers)
        if response.status_code >= 400:
            raise _error_from(response)
        return response.content


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower())
