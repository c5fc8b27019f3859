"""POST /v1/images/uploads with local storage: the same form as S3's, received by the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api_support import assert_error, client_for
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.edit_images import gradient
from support.fakes import FakeClock

KEY, OTHER_KEY = "sk-upload-owner", "sk-someone-else"


def _client(tmp_path: Path, clock: FakeClock) -> Any:
    settings = Settings(
        api_keys=f"{KEY},{OTHER_KEY}",
        local_storage_dir=tmp_path / "images",
        url_signing_secret="test-signing-secret",
    )
    return client_for(Runtime(settings, clock=clock))


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _ticket(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/images/uploads", json={"content_type": "image/png", **body}, headers=_auth()
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


def _send(client: TestClient, ticket: dict[str, Any], data: bytes, **fields: str) -> Any:
    upload = ticket["upload"]
    return client.post(
        upload["url"],
        data={**upload["fields"], **fields},
        files={upload["file_field"]: ("x.png", data, "application/octet-stream")},
    )


def _edit(client: TestClient, file_id: str, key: str = KEY) -> Any:
    return client.post(
        "/v1/images/edits",
        json={"model": "local/sketch", "prompt": "a hat", "images": [{"file_id": file_id}]},
        headers=_auth(key),
    )


def test_upload_then_edit_by_file_id(tmp_path: Path) -> None:
    image = gradient(80, 60)
    with _client(tmp_path, FakeClock()) as client:
        ticket = _ticket(client, bytes=len(image))
        assert ticket["upload"]["url"].endswith(f"/v1/images/uploads/{ticket['file_id']}")
        assert ticket["upload"]["fields"]["Content-Type"] == "image/png"

        sent = _send(client, ticket, image)
        response = _edit(client, ticket["file_id"])

        assert sent.status_code == 204, sent.text
        assert response.status_code == 200, response.text
        assert response.json()["size"] == "80x60"
        assert_error(
            _edit(client, ticket["file_id"], OTHER_KEY),
            400,
            code="file_not_found",
            param="images[0].file_id",
        )


def test_the_form_is_refused_when_changed_late_or_too_big(tmp_path: Path) -> None:
    clock = FakeClock()
    image = gradient()
    with _client(tmp_path, clock) as client:
        ticket = _ticket(client, bytes=len(image) - 1)
        assert_error(_send(client, ticket, image), 413, code="payload_too_large")
        other_type = _send(client, _ticket(client), image, **{"Content-Type": "image/jpeg"})
        assert_error(other_type, 403, code="upload_refused", error_type="permission_error")
        forged = _send(client, _ticket(client), image, signature="0" * 64)
        assert_error(forged, 403, code="upload_refused", error_type="permission_error")
        late = _ticket(client)
        clock.now += 601
        assert_error(_send(client, late, image), 403, code="upload_refused")
        assert_error(
            _edit(client, late["file_id"]), 400, code="file_not_found", param="images[0].file_id"
        )


def test_the_form_of_one_upload_does_not_fit_another(tmp_path: Path) -> None:
    image = gradient()
    with _client(tmp_path, FakeClock()) as client:
        first, second = _ticket(client), _ticket(client)
        response = client.post(
            second["upload"]["url"],
            data=first["upload"]["fields"],
            files={"file": ("x.png", image, "image/png")},
        )

    assert_error(response, 403, code="upload_refused")


def test_bad_upload_requests(tmp_path: Path) -> None:
    with _client(tmp_path, FakeClock()) as client:
        missing = client.post("/v1/images/uploads", json={}, headers=_auth())
        unknown = client.post(
            "/v1/images/uploads", json={"content_type": "image/png", "name": "x"}, headers=_auth()
        )
        negative = client.post(
            "/v1/images/uploads", json={"content_type": "image/png", "bytes": -1}, headers=_auth()
        )
        anonymous = client.post("/v1/images/uploads", json={"content_type": "image/png"})
        no_form = client.post("/v1/images/uploads/file-imagegw-" + "0" * 32, content=b"x")

    assert_error(missing, 400, code="missing_required_parameter", param="content_type")
    assert_error(unknown, 400, code="unknown_parameter", param="name")
    assert_error(negative, 400, code="invalid_type", param="bytes")
    assert anonymous.status_code == 401
    assert_error(no_form, 400, code="invalid_multipart")


def test_a_non_ascii_form_signature_or_a_hostile_ticket_body_is_refused_not_a_500(
    tmp_path: Path,
) -> None:
    # compare_digest raises TypeError on non-ASCII text; json.loads on 5000 digits (issue 12).
    with _client(tmp_path, FakeClock()) as client:
        forged = _send(client, _ticket(client), gradient(), signature="\xe9" * 64)
        assert_error(forged, 403, code="upload_refused", error_type="permission_error")
        huge = client.post(
            "/v1/images/uploads",
            content=b'{"content_type": "image/png", "bytes": ' + b"9" * 5000 + b"}",
            headers={**_auth(), "Content-Type": "application/json"},
        )
        assert_error(huge, 400, code="integer_above_max_value", param="bytes")
