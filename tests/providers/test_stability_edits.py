"""Stability edits on the wire: image-to-image on the Stability API (a file part) and on Bedrock
(base64 in InvokeModel's body), and inpainting with a mask on both (the mask converted to
Stability's white = change, checked pixel by pixel), checked by the fakes as Stability checks
them."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from PIL import Image

from imagegw.errors import InvalidRequest
from imagegw.generation.input_images import InputLimits, inspect_image
from imagegw.providers import build_provider
from imagegw.providers.bedrock.provider import BedrockProvider
from imagegw.providers.inputs import InputImage
from imagegw.providers.stability.provider import StabilityProvider
from imagegw.settings import Settings
from providers.conftest import MakeRequest

from support import fake_bedrock
from support.edit_images import alpha_mask, encoded, gradient
from support.fake_bedrock import FakeBedrock
from support.fake_openai import parse_form
from support.fake_stability import API_KEY, FakeStability

LIMITS = InputLimits(max_bytes=10**7, max_total_bytes=10**8, max_pixels=10**8)


def _input(data: bytes) -> InputImage:
    return inspect_image(data, param="image", limits=LIMITS)


@pytest.fixture
def stability() -> Iterator[FakeStability]:
    with FakeStability() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture
async def stability_provider(stability: FakeStability) -> AsyncIterator[StabilityProvider]:
    async with httpx.AsyncClient() as http:
        built = build_provider(
            "stability", {"api_key": API_KEY, "base_url": stability.origin}, Settings(), http
        )
        assert isinstance(built, StabilityProvider)
        yield built


@pytest.mark.anyio
async def test_sd3_edit_is_image_to_image_with_the_image_as_a_file(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    image = _input(gradient(64, 48))
    request = make_request("stability/sd3.5-large", prompt="make it winter", images=(image,))

    result = await stability_provider.generate(request)

    ((endpoint, fields),) = stability.accepted
    assert endpoint == "sd3"
    assert "aspect_ratio" not in fields  # the output follows the input
    assert (fields["mode"], fields["strength"], fields["model"]) == (
        "image-to-image",
        "0.6",
        "sd3.5-large",
    )
    (sent,) = stability.requests
    form = parse_form(sent.header("content-type") or "", sent.body)
    assert form is not None
    (file,) = [part for part in form if part.filename is not None]
    assert (file.name, file.filename, file.content_type) == ("image", "image.png", "image/png")
    assert file.data == image.data
    assert len(result.images) == 1


@pytest.mark.anyio
async def test_ultra_edit_sends_strength_but_no_mode(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    request = make_request("stability/stable-image-ultra", prompt="x", images=(_input(gradient()),))

    await stability_provider.generate(request)

    ((endpoint, fields),) = stability.accepted
    assert endpoint == "ultra"
    assert "mode" not in fields
    assert fields["strength"] == "0.6"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        for name in fake_bedrock.CLEARED:
            monkeypatch.delenv(name, raising=False)
        for name, value in fake_bedrock.environment(fake).items():
            monkeypatch.setenv(name, value)
        yield fake
    assert fake.handler_errors == []


@pytest.mark.anyio
async def test_bedrock_sd35_edit_is_image_to_image_in_the_invoke_body(
    bedrock: FakeBedrock, make_request: MakeRequest
) -> None:
    image = _input(gradient(64, 48))
    async with httpx.AsyncClient() as http:
        provider = BedrockProvider(http, "us-west-2", connect_timeout_seconds=2)
        result = await provider.generate(
            make_request("bedrock/sd3.5-large", prompt="make it winter", images=(image,))
        )

    (sent,) = bedrock.calls()
    assert sent.json == {
        "prompt": "make it winter",
        "mode": "image-to-image",
        "image": base64.b64encode(image.data).decode(),
        "strength": 0.6,
    }
    assert len(result.images) == 1


# ------------------------------------------------------------------------------ inpainting


def _feathered_mask(width: int, height: int) -> bytes:
    """OpenAI's mask with every alpha value 0..255 somewhere (a feathered edge), so that the
    conversion is checked on each level, not just on black and white."""
    image = Image.new("RGBA", (width, height))
    image.putdata(
        [(9, 99, 199, (x * 7 + y * 3) % 256) for y in range(height) for x in range(width)]
    )
    return encoded(image)


def _assert_white_for_change(sent: bytes, openai_mask: bytes) -> None:
    """Pixel by pixel: Stability's mask is 255 - OpenAI's alpha, as a grayscale PNG."""
    with Image.open(io.BytesIO(sent)) as received, Image.open(io.BytesIO(openai_mask)) as given:
        assert received.format == "PNG"
        assert received.mode == "L"
        assert received.size == given.size
        alpha = given.getchannel("A").tobytes()
        assert sorted(set(alpha)) == list(range(256))
        assert received.tobytes() == bytes(255 - value for value in alpha)


@pytest.mark.anyio
async def test_inpaint_sends_the_image_unchanged_and_the_mask_white_for_change(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    image = _input(gradient(96, 64))
    openai_mask = _feathered_mask(96, 64)
    request = make_request(
        "stability/stable-image-inpaint",
        prompt="a red door",
        images=(image,),
        mask=_input(openai_mask),
        negative_prompt="graffiti",
        seed=7,
        grow_mask=0,
        output_format="webp",
    )

    result = await stability_provider.generate(request)

    ((endpoint, fields),) = stability.accepted
    assert endpoint == "inpaint"
    (sent,) = stability.requests
    assert sent.path == "/v2beta/stable-image/edit/inpaint"
    assert {k: v for k, v in fields.items() if k not in ("image", "mask")} == {
        "prompt": "a red door",
        "negative_prompt": "graffiti",
        "seed": "7",
        "grow_mask": "0",
        "output_format": "webp",
    }
    form = parse_form(sent.header("content-type") or "", sent.body)
    assert form is not None
    files = {part.name: part for part in form if part.filename is not None}
    assert (files["image"].filename, files["image"].content_type) == ("image.png", "image/png")
    assert files["image"].data == image.data
    assert (files["mask"].filename, files["mask"].content_type) == ("mask.png", "image/png")
    _assert_white_for_change(files["mask"].data, openai_mask)
    # The output keeps the input's size; no aspect ratio is reported (none was sent).
    assert result.size == "96x64"
    assert result.output_format == "webp"
    assert "aspect_ratio" not in result.extra
    assert result.extra["seeds"] == [7]


@pytest.mark.anyio
async def test_inpaint_sends_grow_mask_only_when_asked(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    request = make_request(
        "stability/stable-image-inpaint",
        images=(_input(gradient(64, 64)),),
        mask=_input(alpha_mask(64, 64, change=(8, 8, 40, 40))),
        n=2,
    )

    result = await stability_provider.generate(request)

    assert [endpoint for endpoint, _ in stability.accepted] == ["inpaint", "inpaint"]
    for _, fields in stability.accepted:
        assert set(fields) == {"prompt", "output_format", "image", "mask"}
        assert fields["output_format"] == "png"
    assert len(result.images) == 2


@pytest.mark.anyio
async def test_inpaint_without_a_mask_is_refused_before_any_call(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    request = make_request("stability/stable-image-inpaint", images=(_input(gradient(64, 64)),))

    with pytest.raises(InvalidRequest) as caught:
        await stability_provider.generate(request)

    assert caught.value.param == "mask"
    assert stability.requests == []


@pytest.mark.anyio
async def test_bedrock_inpaint_goes_through_the_us_profile_with_the_mask_white_for_change(
    bedrock: FakeBedrock, make_request: MakeRequest
) -> None:
    image = _input(gradient(80, 64))
    openai_mask = _feathered_mask(80, 64)
    async with httpx.AsyncClient() as http:
        provider = BedrockProvider(http, "us-west-2", connect_timeout_seconds=2)
        # The base id is an alias: the profile is what is invoked (on-demand is refused).
        result = await provider.generate(
            make_request(
                "bedrock/stability.stable-image-inpaint-v1:0",
                prompt="a red door",
                images=(image,),
                mask=_input(openai_mask),
                seed=11,
                grow_mask=3,
                output_format="jpeg",
            )
        )

    assert bedrock.refusals == []  # SigV4 over the body as sent, the profile id, the fields
    (sent,) = bedrock.calls("us.stability.stable-image-inpaint-v1:0")
    assert sent.path == "/model/us.stability.stable-image-inpaint-v1%3A0/invoke"
    document = sent.json
    assert document is not None
    mask = base64.b64decode(document.pop("mask"))
    assert document == {
        "prompt": "a red door",
        "image": base64.b64encode(image.data).decode(),
        "seed": 11,
        "grow_mask": 3,
        "output_format": "jpeg",
    }
    _assert_white_for_change(mask, openai_mask)
    assert result.size == "80x64"
    assert result.output_format == "jpeg"
    assert "aspect_ratio" not in result.extra


@pytest.mark.anyio
async def test_bedrock_refuses_the_inpaint_base_id_on_demand(bedrock: FakeBedrock) -> None:
    """The fake is faithful: invoking the base id (not the profile) is Bedrock's 400."""
    base_id = "stability.stable-image-inpaint-v1:0"
    async with httpx.AsyncClient() as http:
        provider = BedrockProvider(http, "us-west-2", connect_timeout_seconds=2)
        with pytest.raises(InvalidRequest) as caught:
            await provider._invoke(
                f"{bedrock.origin}/model/stability.stable-image-inpaint-v1%3A0/invoke",
                b"{}",
                base_id,
                10.0,
                1024 * 1024,
            )
    assert "inference profile" in caught.value.message
