"""Edits as async jobs (`Prefer: respond-async`), run by the in-process worker of `make dev`."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from api_support import assert_error, client_for
from PIL import Image

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.edit_images import alpha_mask, gradient, png_declaring
from support.fakes import FakeClock
from support.jobs import finished_job

EDITS = "/v1/images/edits"
ASYNC = {**AUTH, "Prefer": "respond-async"}


def _client(tmp_path: Path) -> Any:
    settings = Settings(
        api_keys=API_KEY,
        local_storage_dir=tmp_path / "images",
        url_signing_secret="test-signing-secret",
    )
    return client_for(Runtime(settings, clock=FakeClock()))


def test_a_multipart_edit_runs_as_a_job_and_keeps_the_unmasked_pixels(tmp_path: Path) -> None:
    source = gradient(64, 48)
    with _client(tmp_path) as client:
        response = client.post(
            EDITS,
            data={"model": "local/sketch", "prompt": "a moon"},
            files=[
                ("image", ("a.png", source, "image/png")),
                ("mask", ("m.png", alpha_mask(64, 48, change=(0, 0, 32, 48)), "image/png")),
            ],
            headers=ASYNC,
        )
        assert response.status_code == 202, response.text
        assert response.headers["preference-applied"] == "respond-async"
        done = finished_job(client, response.headers["location"], AUTH)
        assert done["status"] == "succeeded", done
        (item,) = done["result"]["data"]
        edited = Image.open(io.BytesIO(client.get(item["url"]).content))

    right = (32, 0, 64, 48)
    original = Image.open(io.BytesIO(source))
    assert (
        edited.convert("RGB").crop(right).tobytes() == original.convert("RGB").crop(right).tobytes()
    )
    assert done["result"]["size"] == "64x48"


def test_a_json_edit_job_reads_its_inputs_from_uploads_made_at_submission(tmp_path: Path) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(gradient(40, 40)).decode()
    with _client(tmp_path) as client:
        response = client.post(
            EDITS,
            json={"model": "local/canvas", "prompt": "x", "images": [{"image_url": data_url}]},
            headers=ASYNC,
        )
        assert response.status_code == 202, response.text
        done = finished_job(client, response.headers["location"], AUTH)

    assert done["status"] == "succeeded", done
    kept = list((tmp_path / "images" / "uploads").glob("*.json"))
    assert len(kept) == 1  # the input, kept as an upload of the key
    assert API_KEY not in kept[0].read_text()
    assert json.loads(kept[0].read_text())["owner"]


def test_a_bad_edit_is_refused_at_submission_not_as_a_failed_job(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        bomb = client.post(
            EDITS,
            data={"model": "local/sketch", "prompt": "x"},
            files=[("image", ("a.png", png_declaring(50_000, 50_000), "image/png"))],
            headers=ASYNC,
        )
        inline = client.post(
            EDITS,
            data={"model": "local/sketch", "prompt": "x", "response_format": "b64_json"},
            files=[("image", ("a.png", gradient(), "image/png"))],
            headers=ASYNC,
        )

    assert_error(bomb, 400, code="image_too_large", param="image")
    assert_error(inline, 400, code="invalid_value", param="response_format")


def test_a_streamed_edit_job_keeps_its_partial_images_as_links(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        response = client.post(
            EDITS,
            data={
                "model": "local/sketch",
                "prompt": "a moon",
                "stream": "true",
                "partial_images": "2",
            },
            files=[("image", ("a.png", gradient(64, 48), "image/png"))],
            headers=ASYNC,
        )
        assert response.status_code == 202, response.text
        done = finished_job(client, response.headers["location"], AUTH)
        assert done["status"] == "succeeded", done
        partials = done["progress"]["partial_images"]
        assert [partial["index"] for partial in partials] == [0, 1]
        images = [Image.open(io.BytesIO(client.get(p["url"]).content)) for p in partials]

    assert [image.size for image in images] == [(64, 48), (64, 48)]  # partials of the edit


def _submit(client: Any, image: bytes, key: str, prompt: str = "a moon") -> Any:
    return client.post(
        EDITS,
        data={"model": "local/sketch", "prompt": prompt},
        files=[("image", ("a.png", image, "image/png"))],
        headers={**ASYNC, "Idempotency-Key": key},
    )


def test_an_idempotency_key_names_the_edit_job_so_a_repeat_gets_the_same_job(
    tmp_path: Path,
) -> None:
    image = gradient(64, 48)
    with _client(tmp_path) as client:
        first = _submit(client, image, "edit-1")
        assert first.status_code == 202, first.text
        # The same edit again (another multipart boundary): the job it already has.
        again = _submit(client, image, "edit-1")
        assert again.status_code == 202, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["location"] == first.headers["location"]
        done = finished_job(client, first.headers["location"], AUTH)
        assert done["status"] == "succeeded", done
        # Another key: another job.
        other = _submit(client, image, "edit-2")
        assert other.json()["id"] != first.json()["id"]
        finished_job(client, other.headers["location"], AUTH)


def test_an_idempotency_key_reused_for_another_edit_is_a_422(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        first = _submit(client, gradient(64, 48), "edit-1")
        assert first.status_code == 202, first.text
        for changed in (
            _submit(client, gradient(48, 64), "edit-1"),
            _submit(client, gradient(64, 48), "edit-1", prompt="a sun"),
        ):
            assert_error(changed, 422, code="idempotency_key_reused", param="Idempotency-Key")
        finished_job(client, first.headers["location"], AUTH)
