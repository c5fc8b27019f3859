"""Uploads beside the API on S3 (a moto server over real HTTP): the presigned POST, its policy,
the edit that names the file_id, and the gateway's own presigned links read back from the bucket."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.aws import BUCKET, create_bucket
from support.edit_images import gradient, noise
from support.jobs import finished_job

KEY, OTHER_KEY = "sk-upload-owner", "sk-someone-else"
EDITS = "/v1/images/edits"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(aws_environment: None, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    client = create_bucket(endpoint_url=moto_url)
    yield client
    for entry in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=entry["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def gateway(s3: Any) -> Iterator[TestClient]:
    settings = Settings(api_keys=f"{KEY},{OTHER_KEY}", storage="s3", s3_bucket=BUCKET)
    with TestClient(create_app(runtime=Runtime(settings))) as client:
        yield client


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _upload(gateway: TestClient, data: bytes, content_type: str = "image/png") -> dict[str, Any]:
    response = gateway.post(
        "/v1/images/uploads",
        json={"content_type": content_type, "bytes": len(data)},
        headers=_auth(),
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


def _post_form(
    ticket: dict[str, Any], data: bytes, content_type: str = "image/png"
) -> httpx.Response:
    upload = ticket["upload"]
    return httpx.post(
        upload["url"],
        data=upload["fields"],
        files={upload["file_field"]: ("ignored.png", data, content_type)},
        timeout=10,
    )


def test_the_upload_form_is_limited_to_one_object_type_owner_and_size(
    gateway: TestClient, s3: Any
) -> None:
    ticket = _upload(gateway, b"x" * 1234)

    fields = ticket["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1234] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert {"bucket": BUCKET} in conditions
    assert {"key": fields["key"]} in conditions
    owner = fields["x-amz-meta-owner"]
    assert {"x-amz-meta-owner": owner} in conditions
    assert KEY not in json.dumps(ticket)
    assert "env-key" not in owner  # a hash of the key's name, not the name
    assert fields["key"].startswith("uploads/")
    assert ticket["file_id"].startswith("file-imagegw-")
    expiration = dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert abs(expiration.timestamp() - ticket["expires_at"]) <= 2
    assert ticket["expires_at"] - time.time() <= 600 + 2  # minutes, not hours
    assert ticket["max_bytes"] == 1234


def test_an_uploaded_image_is_edited_by_file_id_and_only_by_its_owner(
    gateway: TestClient, s3: Any
) -> None:
    image = noise(96, 64)
    ticket = _upload(gateway, image)

    answer = _post_form(ticket, image)

    assert answer.status_code == 204, answer.text
    stored = s3.get_object(Bucket=BUCKET, Key=ticket["upload"]["fields"]["key"])
    assert stored["Body"].read() == image
    edit = {
        "model": "local/sketch",
        "prompt": "add a moon",
        "images": [{"file_id": ticket["file_id"]}],
    }
    response = gateway.post(EDITS, json=edit, headers=_auth())
    assert response.status_code == 200, response.text
    assert response.json()["size"] == "96x64"

    stranger = gateway.post(EDITS, json=edit, headers=_auth(OTHER_KEY))
    assert stranger.status_code == 400
    assert stranger.json()["error"]["code"] == "file_not_found"
    assert stranger.json()["error"]["param"] == "images[0].file_id"


def test_a_file_id_before_the_upload_is_not_found(gateway: TestClient, s3: Any) -> None:
    ticket = _upload(gateway, gradient())

    response = gateway.post(
        EDITS,
        json={"model": "local/sketch", "prompt": "x", "images": [{"file_id": ticket["file_id"]}]},
        headers=_auth(),
    )

    assert response.json()["error"]["code"] == "file_not_found"


def test_uploads_refuse_other_types_and_sizes_up_front(gateway: TestClient, s3: Any) -> None:
    gif = gateway.post("/v1/images/uploads", json={"content_type": "image/gif"}, headers=_auth())
    huge = gateway.post(
        "/v1/images/uploads",
        json={"content_type": "image/png", "bytes": 10**12},
        headers=_auth(),
    )

    assert (gif.status_code, gif.json()["error"]["param"]) == (400, "content_type")
    assert (huge.status_code, huge.json()["error"]["param"]) == (413, "bytes")


def test_the_gateways_own_presigned_link_is_read_from_the_bucket(
    gateway: TestClient, s3: Any
) -> None:
    generated = gateway.post(
        "/v1/images/generations",
        json={
            "model": "local/sketch",
            "prompt": "a sofa",
            "size": "256x256",
            "response_format": "url",
        },
        headers=_auth(),
    ).json()
    link = generated["data"][0]["url"]
    assert "X-Amz-Signature=" in link

    response = gateway.post(
        EDITS,
        json={"model": "local/sketch", "prompt": "make it blue", "images": [{"image_url": link}]},
        headers=_auth(OTHER_KEY),
    )

    assert response.status_code == 200, response.text
    assert response.json()["size"] == "256x256"


def test_a_link_into_the_bucket_outside_the_image_prefix_is_not_read(
    gateway: TestClient, s3: Any
) -> None:
    image = gradient()
    ticket = _upload(gateway, image)
    assert _post_form(ticket, image).status_code == 204
    # A real presigned GET of the upload object: readable over HTTP, but not an image link.
    link = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": ticket["upload"]["fields"]["key"]}
    )

    response = gateway.post(
        EDITS,
        json={"model": "local/sketch", "prompt": "x", "images": [{"image_url": link}]},
        headers=_auth(OTHER_KEY),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_url_not_allowed"


def test_an_edit_job_keeps_its_inputs_as_uploads_in_the_bucket(
    gateway: TestClient, s3: Any
) -> None:
    image = noise(48, 32)

    response = gateway.post(
        EDITS,
        data={"model": "local/sketch", "prompt": "a moon"},
        files=[("image", ("a.png", image, "image/png"))],
        headers={**_auth(), "Prefer": "respond-async"},
    )

    assert response.status_code == 202, response.text
    view = finished_job(gateway, response.headers["location"], _auth())
    assert view["status"] == "succeeded", view
    assert view["result"]["size"] == "48x32"
    (kept,) = s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/")["Contents"]
    stored = s3.get_object(Bucket=BUCKET, Key=kept["Key"])
    assert stored["Body"].read() == image
    assert stored["ServerSideEncryption"] == "AES256"
    assert set(stored["Metadata"]) == {"owner"}
