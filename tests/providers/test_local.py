"""The offline provider: real images of the requested size and format, deterministic."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imagegw.providers.base import Completed, ImageResult, PartialImage
from imagegw.providers.local import LocalProvider
from providers.conftest import MakeRequest


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def generate(
    make_request: MakeRequest, model: str = "local/sketch", **kw: object
) -> ImageResult:
    return await LocalProvider().generate(make_request(model, **kw))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        ("local/sketch", None, (1024, 1024)),
        ("local/sketch", "auto", (1024, 1024)),
        ("local/sketch", "256x256", (256, 256)),
        ("local/sketch", "1024x1536", (1024, 1536)),
        ("local/canvas", "640x384", (640, 384)),
        ("local/classic", "1792x1024", (1792, 1024)),
    ],
)
async def test_images_have_the_requested_size(
    make_request: MakeRequest, model: str, size: str | None, expected: tuple[int, int]
) -> None:
    result = await generate(make_request, model, size=size)
    assert decode(result.images[0].data()).size == expected
    assert result.size == f"{expected[0]}x{expected[1]}"  # resolved, never "auto"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("output_format", "pillow_format", "media_type"),
    [
        (None, "PNG", "image/png"),
        ("png", "PNG", "image/png"),
        ("jpeg", "JPEG", "image/jpeg"),
        ("webp", "WEBP", "image/webp"),
    ],
)
async def test_images_are_encoded_in_the_requested_format(
    make_request: MakeRequest, output_format: str | None, pillow_format: str, media_type: str
) -> None:
    result = await generate(make_request, size="256x256", output_format=output_format, n=2)
    assert len(result.images) == 2
    for image in result.images:
        assert image.media_type == media_type
        assert decode(image.data()).format == pillow_format
    assert result.output_format == (output_format or "png")


@pytest.mark.anyio
@pytest.mark.parametrize("output_format", ["png", "webp"])
async def test_transparent_background_has_an_alpha_channel(
    make_request: MakeRequest, output_format: str
) -> None:
    result = await generate(
        make_request, size="256x256", background="transparent", output_format=output_format
    )
    image = decode(result.images[0].data())
    assert image.mode == "RGBA"
    alpha_min, alpha_max = image.getchannel("A").getextrema()
    assert alpha_min == 0  # see-through background
    assert alpha_max == 255  # opaque shapes on it
    assert result.background == "transparent"


@pytest.mark.anyio
async def test_opaque_by_default(make_request: MakeRequest) -> None:
    result = await generate(make_request, size="256x256")
    image = decode(result.images[0].data())
    assert "A" not in image.getbands()
    assert result.background == "opaque"


@pytest.mark.anyio
async def test_same_request_same_bytes(make_request: MakeRequest) -> None:
    first = await generate(make_request, size="256x256", prompt="a tree", n=3)
    again = await generate(make_request, size="256x256", prompt="a tree", n=3)
    assert [i.data() for i in first.images] == [i.data() for i in again.images]
    # ...and the n images of one request differ from each other.
    assert len({i.data() for i in first.images}) == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("other_model", "other_prompt"),
    [("local/sketch", "a house"), ("local/canvas", "a tree")],
)
async def test_different_prompt_or_model_gives_a_different_image(
    make_request: MakeRequest, other_model: str, other_prompt: str
) -> None:
    base = await generate(make_request, size="1024x1024", prompt="a tree")
    other = await generate(make_request, other_model, size="1024x1024", prompt=other_prompt)
    assert base.images[0].data() != other.images[0].data()
    # Visibly different, not a byte or two.
    a, b = decode(base.images[0].data()), decode(other.images[0].data())
    assert a.resize((8, 8)).tobytes() != b.resize((8, 8)).tobytes()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("quality", "resolved"), [(None, "medium"), ("auto", "medium"), ("high", "high")]
)
async def test_quality_is_reported_resolved(
    make_request: MakeRequest, quality: str | None, resolved: str
) -> None:
    result = await generate(make_request, size="256x256", quality=quality)
    assert result.quality == resolved
    assert result.usage is None  # nothing was billed


@pytest.mark.anyio
@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
async def test_output_compression_is_honoured_over_its_whole_range(
    make_request: MakeRequest, output_format: str
) -> None:
    sizes = {}
    for compression in (0, 50, 100):
        result = await generate(
            make_request,
            size="512x512",
            output_format=output_format,
            output_compression=compression,
        )
        sizes[compression] = len(result.images[0].data())
    # 0 is a valid value (validation accepts 0..100): it must not fall back to a default.
    assert sizes[0] < sizes[50] < sizes[100]


# ---------------------------------------------------------------- streaming


@pytest.mark.anyio
@pytest.mark.parametrize("partial_images", [0, 1, 3])
async def test_stream_renders_partial_images_coarse_to_fine_then_the_final_image(
    make_request: MakeRequest, partial_images: int
) -> None:
    request = make_request(
        "local/sketch", size="512x512", partial_images=partial_images, prompt="a tree"
    )
    provider = LocalProvider()
    events = [event async for event in provider.stream(request)]
    partials = [event for event in events if isinstance(event, PartialImage)]
    assert [event.index for event in partials] == list(range(partial_images))
    last = events[-1]
    assert isinstance(last, Completed)
    assert len(events) == partial_images + 1
    final = decode(last.result.images[0].data())
    # The final image is the one a non-streamed request gets.
    assert last.result.images[0].data() == (await provider.generate(request)).images[0].data()
    detail = []
    for event in partials:
        image = decode(event.image.data())
        assert image.size == final.size
        assert image.format == "PNG"
        # Coarser than the final image: blocks of one colour where detail will be.
        detail.append(len(image.convert("RGB").getcolors(maxcolors=1 << 24) or []))
    detail.append(len(final.convert("RGB").getcolors(maxcolors=1 << 24) or []))
    assert detail == sorted(detail)
    assert len(set(detail)) == len(detail)  # each stage really is finer than the last
