from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import AUTH
from support.fakes import FakeProvider


def test_generation_reaches_the_provider_and_answers_in_openai_shape(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    response = client.post(
        "/v1/images/generations",
        json={"model": "openai/gpt-image-1.5", "prompt": "a lighthouse", "n": 2},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == 2
    assert body["usage"]["total_tokens"] == 30
    assert fake_provider.requests[0].upstream_model == "gpt-image-1.5"
    assert response.headers["x-request-id"].startswith("req_")
