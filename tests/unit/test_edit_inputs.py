"""Untrusted edit inputs: typed by content, bombs refused unread, masks converted exactly."""

from __future__ import annotations

import base64
import io
import ipaddress

import pytest
from PIL import Image

from imagegw.errors import ForbiddenImageUrl, InvalidImage, LinkRefused, PayloadTooLarge
from imagegw.generation.image_refs import decode_data_url
from imagegw.generation.input_images import InputLimits, check_mask, inspect_image, sniff_format
from imagegw.generation.remote_images import is_public_address, public_address
from imagegw.providers.masks import mask_bytes, white_for_change_png
from imagegw.storage.s3 import bucket_object_key, check_presigned_lifetime

from support.edit_images import alpha_mask, encoded, png_declaring, solid

LIMITS = InputLimits(max_bytes=1_000_000, max_total_bytes=2_000_000, max_pixels=4_000_000)


@pytest.mark.parametrize(
    ("image_format", "expected"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")]
)
def test_each_accepted_format_is_read_from_its_content(image_format: str, expected: str) -> None:
    data = solid(40, 30, image_format=image_format)

    image = inspect_image(data, param="image", limits=LIMITS)

    assert (image.format, image.width, image.height) == (expected, 40, 30)
    assert image.data is data  # passed on unchanged, never re-encoded


def test_a_text_file_is_refused_whatever_it_is_called() -> None:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(b"just some text, named cat.png", param="image[1]", limits=LIMITS)

    assert caught.value.code == "invalid_image_format"
    assert caught.value.param == "image[1]"


def test_a_gif_is_refused_as_a_format_the_gateway_does_not_take() -> None:
    data = encoded(Image.new("RGB", (8, 8)), "GIF")

    with pytest.raises(InvalidImage) as caught:
        inspect_image(data, param="image", limits=LIMITS)

    assert caught.value.code == "invalid_image_format"
    assert sniff_format(data) is None


def test_a_jpeg_where_only_png_is_taken_is_named() -> None:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(solid(image_format="JPEG"), param="mask", limits=LIMITS, formats=("png",))

    assert "a JPEG image" in caught.value.message


def test_a_decompression_bomb_is_refused_from_its_header_alone() -> None:
    bomb = png_declaring(50_000, 50_000)
    assert len(bomb) < 200

    with pytest.raises(InvalidImage) as caught:
        inspect_image(bomb, param="image", limits=LIMITS)

    assert caught.value.code == "image_too_large"


def test_an_image_over_the_gateways_own_pixel_budget_is_named_with_its_size() -> None:
    # 9 MP: under Pillow's own bomb guard (89 MP), over this gateway's limit (4 MP here).
    with pytest.raises(InvalidImage) as caught:
        inspect_image(png_declaring(3000, 3000), param="image[2]", limits=LIMITS)

    assert (caught.value.code, caught.value.param) == ("image_too_large", "image[2]")
    assert "3000x3000" in caught.value.message


def test_a_header_that_promises_more_than_the_data_holds_is_corrupt() -> None:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(png_declaring(100, 100), param="image", limits=LIMITS)

    assert caught.value.code == "invalid_image"


def test_a_truncated_png_is_refused_before_any_upstream_sees_it() -> None:
    data = solid(64, 64)

    with pytest.raises(InvalidImage) as caught:
        inspect_image(data[: len(data) // 2], param="image", limits=LIMITS)

    assert caught.value.code == "invalid_image"


def test_a_file_over_the_per_file_limit_is_a_413() -> None:
    small = InputLimits(max_bytes=100, max_total_bytes=1000, max_pixels=1000)

    with pytest.raises(PayloadTooLarge) as caught:
        inspect_image(solid(), param="image", limits=small)

    assert caught.value.status == 413
    assert caught.value.param == "image"


def test_the_mask_must_carry_alpha_and_match_the_first_image() -> None:
    first = inspect_image(solid(64, 48), param="image", limits=LIMITS)
    opaque = inspect_image(solid(64, 48), param="mask", limits=LIMITS)
    smaller = inspect_image(alpha_mask(32, 48, change=(0, 0, 8, 8)), param="mask", limits=LIMITS)

    for bad in (opaque, smaller):
        with pytest.raises(InvalidImage) as caught:
            check_mask(bad, first)
        assert (caught.value.code, caught.value.param) == ("invalid_mask", "mask")
    check_mask(inspect_image(alpha_mask(change=(0, 0, 8, 8)), param="mask", limits=LIMITS), first)


def test_the_alpha_mask_becomes_a_white_for_change_mask_pixel_for_pixel() -> None:
    # Every alpha value 0..255 once, with colour channels that must not matter.
    source = Image.new("RGBA", (256, 1))
    source.putdata([(a, 255 - a, 7, a) for a in range(256)])
    mask = inspect_image(encoded(source), param="mask", limits=LIMITS)

    converted = Image.open(io.BytesIO(white_for_change_png(mask)))

    assert converted.mode == "L"
    assert converted.size == (256, 1)
    assert list(converted.get_flattened_data()) == [255 - a for a in range(256)]


def test_a_fully_transparent_box_becomes_exactly_a_white_box() -> None:
    mask = inspect_image(alpha_mask(64, 48, change=(10, 5, 30, 20)), param="mask", limits=LIMITS)

    data, media_type = mask_bytes(mask, "white")

    converted = Image.open(io.BytesIO(data))
    assert media_type == "image/png"
    for y in range(48):
        for x in range(64):
            inside = 10 <= x < 30 and 5 <= y < 20
            assert converted.getpixel((x, y)) == (255 if inside else 0)


def test_an_alpha_mask_upstream_gets_the_callers_bytes_unchanged() -> None:
    mask = inspect_image(alpha_mask(change=(0, 0, 4, 4)), param="mask", limits=LIMITS)

    assert mask_bytes(mask, "alpha") == (mask.data, "image/png")


# ------------------------------------------------------------------------------ SSRF guard


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


async def _loopback_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1", "::1"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/cat.png",
        "https://127.0.0.2:8443/cat.png",
        "https://[::1]/cat.png",
        "https://[::ffff:127.0.0.1]/cat.png",
        "https://localhost/cat.png",
    ],
)
async def test_https_urls_to_loopback_are_refused(url: str) -> None:
    import httpx

    with pytest.raises(ForbiddenImageUrl) as caught:
        await public_address(httpx.URL(url), param="images[0]", resolver=_loopback_resolver)

    assert caught.value.param == "images[0].image_url"
    assert caught.value.code == "image_url_not_allowed"


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["http://127.0.0.1/cat.png", "ftp://127.0.0.1/cat.png"])
async def test_only_https_is_fetched(url: str) -> None:
    import httpx

    with pytest.raises(ForbiddenImageUrl, match="only https"):
        await public_address(httpx.URL(url), param="images[0]", resolver=_loopback_resolver)


@pytest.mark.anyio
async def test_a_url_with_credentials_is_refused() -> None:
    import httpx

    with pytest.raises(ForbiddenImageUrl, match="user name or password"):
        await public_address(
            httpx.URL("https://user:pw@localhost/x.png"),
            param="images[0]",
            resolver=_loopback_resolver,
        )


# ------------------------------------------------------------------------------ data: URLs


def test_a_base64_data_url_is_decoded_and_its_declared_type_is_not_believed() -> None:
    png = solid()
    url = "data:text/plain;base64," + base64.b64encode(png).decode()

    assert decode_data_url(url, param="images[0].image_url", max_bytes=10**6) == png


@pytest.mark.parametrize(
    "url", ["data:image/png,notbase64", "data:image/png;base64,@@@@", "data:;base64"]
)
def test_malformed_data_urls_are_400s(url: str) -> None:
    with pytest.raises(InvalidImage):
        decode_data_url(url, param="images[0].image_url", max_bytes=10**6)


def test_an_oversized_data_url_is_refused_before_decoding() -> None:
    url = "data:image/png;base64," + "A" * 4000

    with pytest.raises(PayloadTooLarge):
        decode_data_url(url, param="mask.image_url", max_bytes=1000)


# ------------------------------------------------------------------------------ own S3 links


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gw-bucket.s3.eu-west-1.amazonaws.com/images/k.png?x=1", "images/k.png"),
        ("https://gw-bucket.s3.amazonaws.com/images/k.png", "images/k.png"),
        ("https://s3.eu-west-1.amazonaws.com/gw-bucket/images/k.png", "images/k.png"),
        ("http://127.0.0.1:5000/gw-bucket/images/k.png", "images/k.png"),
        ("https://other.s3.eu-west-1.amazonaws.com/images/k.png", None),
        ("https://gw-bucket.s3.eu-west-1.amazonaws.com.evil.test/images/k.png", None),
        ("http://gw-bucket.s3.eu-west-1.amazonaws.com/images/k.png", None),
        ("http://127.0.0.1:5001/gw-bucket/images/k.png", None),
    ],
)
def test_urls_of_the_gateways_own_bucket_are_recognized(url: str, expected: str | None) -> None:
    assert bucket_object_key(url, "gw-bucket", endpoint_url="http://127.0.0.1:5000") == expected


def test_an_expired_presigned_url_is_refused() -> None:
    url = (
        "https://b.s3.amazonaws.com/images/k.png?X-Amz-Date=20261122T100000Z"
        "&X-Amz-Expires=3600&X-Amz-Signature=abc"
    )
    check_presigned_lifetime(url, now=1795345200 - 60)  # 2026-11-22T10:59:00Z

    with pytest.raises(LinkRefused):
        check_presigned_lifetime(url, now=1795345200 + 1)
    with pytest.raises(LinkRefused):
        check_presigned_lifetime("https://b.s3.amazonaws.com/images/k.png", now=0)
