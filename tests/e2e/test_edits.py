"""The official openai client's images.edit through the gateway, unchanged, to a fake OpenAI."""

from __future__ import annotations

import base64
import io
import urllib.request

import httpx
import openai
import pytest
from openai.types import ImagesResponse
from PIL import Image

from e2e.conftest import CLIENT_KEY, UPSTREAM_KEY

from support.edit_images import alpha_mask, gradient, png_declaring, solid
from support.fake_openai import FakeOpenAI, encode_image


def test_one_image_reaches_openai_as_the_same_multipart_edit(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    source = gradient(64, 48)

    response = oai.images.edit(
        model="openai/gpt-image-1.5",
        image=("photo.png", source, "image/png"),
        prompt="add a red hat",
        size="1024x1024",
        quality="low",
        input_fidelity="high",
        user="u1",
    )

    (sent,) = upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1/images/edits")
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_KEY.encode() not in sent.body
    assert sent.fields() == {
        "model": "gpt-image-1.5",
        "prompt": "add a red hat",
        "n": "1",
        "size": "1024x1024",
        "quality": "low",
        "input_fidelity": "high",
        "user": "u1",
    }
    (file,) = sent.files()
    assert (file.name, file.content_type, file.data) == ("image", "image/png", source)
    assert file.filename == "image-0.png"  # the caller's file name is not passed on
    assert base64.b64decode(response.data[0].b64_json or "") == encode_image("1024x1024", "png")
    assert (response.size, response.quality, response.output_format) == ("1024x1024", "low", "png")


def test_several_images_and_a_mask(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    first, second, third = gradient(64, 48), solid(20, 20, image_format="JPEG"), solid(8, 8)
    mask = alpha_mask(64, 48, change=(4, 4, 20, 20))

    response = oai.images.edit(
        model="openai/gpt-image-2",
        image=[("a.png", first, "image/png"), ("b.jpg", second, "image/jpeg"), third],
        mask=("mask.png", mask, "image/png"),
        prompt="put the cat from image 2 on the sofa of image 1",
        n=2,
    )

    (sent,) = upstream.requests
    files = sent.files()
    assert [(f.name, f.content_type) for f in files] == [
        ("image[]", "image/png"),
        ("image[]", "image/jpeg"),
        ("image[]", "image/png"),
        ("mask", "image/png"),
    ]
    assert [f.data for f in files] == [first, second, third, mask]
    assert sent.fields()["n"] == "2"
    assert len(response.data) == 2


def test_json_edit_with_a_link_to_an_earlier_image(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    generated = oai.images.generate(
        model="local/sketch", prompt="a sofa", size="256x256", response_format="url"
    )
    link = generated.data[0].url
    assert link is not None
    with urllib.request.urlopen(link, timeout=10) as answer:  # what the caller could download
        linked_bytes = answer.read()
    upstream.requests.clear()

    response = oai.post(
        "/images/edits",
        body={
            "model": "openai/gpt-image-2",
            "prompt": "make it blue",
            "images": [{"image_url": link}],
            "mask": {
                "image_url": "data:image/png;base64,"
                + base64.b64encode(alpha_mask(256, 256, change=(0, 0, 128, 128))).decode()
            },
        },
        cast_to=ImagesResponse,
    )

    (sent,) = upstream.requests  # the link was read from storage: the only request is the edit
    image, mask = sent.files()
    assert image.data == linked_bytes
    assert mask.name == "mask"
    assert response.data[0].b64_json


def test_a_hostile_file_is_a_bad_request_naming_it(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.edit(
            model="openai/gpt-image-2",
            image=[solid(), ("bomb.png", png_declaring(40_000, 40_000), "image/png")],
            prompt="x",
        )

    assert caught.value.code == "image_too_large"
    assert caught.value.param == "image[1]"
    assert upstream.requests == []


def test_variations_say_where_to_go(oai: openai.OpenAI) -> None:
    # The SDK itself marks the method deprecated ("This endpoint is retired").
    with (
        pytest.raises(openai.APIStatusError) as caught,
        pytest.warns(DeprecationWarning, match="deprecated"),
    ):
        oai.images.create_variation(image=solid(), model="dall-e-2")

    assert caught.value.status_code == 410
    assert "images/edits" in caught.value.message


def test_local_edit_keeps_the_unmasked_pixels(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    source = gradient(64, 48)

    response = oai.images.edit(
        model="local/canvas",
        image=("a.png", source, "image/png"),
        mask=("m.png", alpha_mask(64, 48, change=(32, 0, 64, 48)), "image/png"),
        prompt="a moon on the right",
    )

    edited = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json or "")))
    original = Image.open(io.BytesIO(source))
    left = (0, 0, 32, 48)
    assert (
        edited.convert("RGB").crop(left).tobytes() == original.convert("RGB").crop(left).tobytes()
    )
    assert edited.size == (64, 48)
    assert upstream.requests == []


def test_upload_then_json_edit_by_file_id_as_documented(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    data = gradient(80, 40)

    ticket = oai.post(
        "/images/uploads", body={"content_type": "image/png", "bytes": len(data)}, cast_to=dict
    )
    form = ticket["upload"]
    sent = httpx.post(
        form["url"],
        data=form["fields"],
        files={form["file_field"]: ("x.png", data, "image/png")},
        timeout=10,
    )
    response = oai.post(
        "/images/edits",
        body={
            "model": "openai/gpt-image-2",
            "prompt": "x",
            "images": [{"file_id": ticket["file_id"]}],
        },
        cast_to=ImagesResponse,
    )

    assert sent.status_code == 204
    (edit,) = upstream.requests
    (image,) = edit.files()
    assert image.data == data
    assert response.data[0].b64_json
