"""Prices: the hold before a call, the cost after it, and the catalog's price data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from imagegw.catalog import load_catalog
from imagegw.catalog.prices import (
    Cost,
    ImagePrice,
    MegapixelRates,
    Price,
    TokenRates,
    cost_body,
    cost_header,
    cost_of,
    max_cost,
    to_micros,
)

D = Decimal
GPT_IMAGE_2 = Price(
    source="test",
    as_of=dt.date(2026, 9, 5),
    tokens=TokenRates(
        text_input=D(5), image_input=D(8), image_output=D(30), partial_image_tokens=100
    ),
    per_image=(
        ImagePrice(quality="low", sizes=("1024x1024",), usd=D("0.006")),
        ImagePrice(quality="medium", sizes=("1024x1024",), usd=D("0.053")),
        ImagePrice(quality="high", sizes=("1024x1024",), usd=D("0.211")),
        ImagePrice(quality="high", sizes=("1536x1024", "1024x1536"), usd=D("0.165")),
        ImagePrice(quality="high", sizes=("2048x2048",), usd=D("0.428")),
    ),
)
FLAT = Price(source="test", as_of=dt.date(2026, 6, 1), per_image=(ImagePrice(usd=D("0.08")),))


# ---------------------------------------------------------------- the hold


@pytest.mark.parametrize(
    ("quality", "size", "per_image"),
    [
        ("high", "1024x1024", "0.211"),
        ("low", "1024x1024", "0.006"),
        ("high", "1024x1536", "0.165"),
        # auto or absent allows every row that matches the rest.
        ("auto", "1024x1024", "0.211"),
        (None, "1024x1024", "0.211"),
        ("high", "auto", "0.428"),
        (None, None, "0.428"),
        # A free WxH no row names may cost up to the dearest row.
        ("low", "2000x1008", "0.428"),
        ("medium", "1536x1024", "0.428"),
    ],
)
def test_the_hold_is_the_dearest_row_the_parameters_allow(
    quality: str | None, size: str | None, per_image: str
) -> None:
    assert GPT_IMAGE_2.most_per_image(quality, size) == D(per_image)
    hold = max_cost(GPT_IMAGE_2, n=3, quality=quality, size=size)
    assert hold == D(per_image) * 3


def test_the_hold_counts_the_prompt_and_streamed_partial_images() -> None:
    hold = max_cost(
        GPT_IMAGE_2, n=1, quality="low", size="1024x1024", prompt_chars=1000, partial_images=3
    )
    # 0.006 + 1000 text tokens at $5/1M + 3 x 100 output tokens at $30/1M
    assert hold == D("0.006") + D("0.005") + D("0.009")


def test_a_flat_price_holds_the_same_for_any_parameters() -> None:
    assert max_cost(FLAT, n=2, quality=None, size="1344x768") == D("0.16")


def test_megapixel_prices_grow_with_the_size_and_hold_the_largest_when_unsaid() -> None:
    flux2 = Price(
        source="test",
        as_of=dt.date(2026, 12, 1),
        megapixels=MegapixelRates(
            first=D("0.03"), additional=D("0.015"), input=D("0.015"), max_megapixels=4
        ),
        reported=True,
    )
    assert flux2.most_per_image(None, "1024x1024") == D("0.045")  # 1.05 MP: two megapixels
    assert flux2.most_per_image(None, "1000x1000") == D("0.03")
    assert flux2.most_per_image(None, None) == D("0.075")
    assert flux2.megapixels_price(2, input_megapixels=1) == D("0.06")


# ---------------------------------------------------------------- the cost


def test_token_billed_cost_comes_from_the_upstream_usage() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 4160,
        "total_tokens": 4210,
        "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
    }
    cost = cost_of(GPT_IMAGE_2, delivered=1, quality="high", size="1024x1024", usage=usage)
    assert cost == Cost(D(10 * 5 + 40 * 8 + 4160 * 30) / 1_000_000, estimated=False)
    assert cost is not None
    assert cost.body() == {"amount": 0.12517, "currency": "USD", "estimated": False}
    assert cost.header() == "0.125170"


def test_edit_input_images_are_billed_from_usage_at_the_image_rate() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 0,
        "input_tokens_details": {"text_tokens": 200, "image_tokens": 800},
    }
    cost = cost_of(GPT_IMAGE_2, delivered=1, quality=None, size=None, usage=usage, input_images=2)
    assert cost == Cost(D(200 * 5 + 800 * 8) / 1_000_000, estimated=False)


def test_without_an_input_split_an_edit_is_charged_the_image_rate_and_marked_estimated() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 0}
    edit = cost_of(GPT_IMAGE_2, delivered=1, quality=None, size=None, usage=usage, input_images=1)
    assert edit == Cost(D("0.008"), estimated=True)
    generation = cost_of(GPT_IMAGE_2, delivered=1, quality=None, size=None, usage=usage)
    assert generation == Cost(D("0.005"), estimated=False)


def test_streamed_partial_images_add_their_tokens_and_mark_the_cost_estimated() -> None:
    usage = {"input_tokens": 0, "output_tokens": 1000}
    cost = cost_of(
        GPT_IMAGE_2, delivered=1, quality="high", size=None, usage=usage, partial_images=2
    )
    assert cost == Cost(D("0.03") + D("0.006"), estimated=True)


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {},
        {"output_tokens": "12"},
        {"input_tokens": -1, "output_tokens": 3},
        {"input_tokens": True, "output_tokens": 1},
    ],
)
def test_without_usable_usage_the_cost_is_estimated_from_the_rows(usage: object) -> None:
    cost = cost_of(GPT_IMAGE_2, delivered=2, quality="high", size="1024x1024", usage=usage)  # type: ignore[arg-type]
    assert cost == Cost(D("0.422"), estimated=True)


def test_partial_delivery_costs_only_what_was_delivered() -> None:
    assert cost_of(FLAT, delivered=3, quality=None, size=None) == Cost(D("0.24"), estimated=True)
    assert cost_of(FLAT, delivered=0, quality=None, size=None) == Cost(D(0), estimated=False)


def test_a_reported_cost_is_the_cost() -> None:
    reported = FLAT.model_copy(update={"reported": True})
    cost = cost_of(reported, delivered=1, quality=None, size=None, reported_usd=D("0.045"))
    assert cost == Cost(D("0.045"), estimated=False)
    # Not reported this time: the rows estimate it.
    assert cost_of(reported, delivered=1, quality=None, size=None) == Cost(D("0.08"), True)


def test_an_unknown_price_is_no_cost_never_a_guess() -> None:
    assert cost_of(None, delivered=4, quality=None, size=None, usage={"output_tokens": 9}) is None
    assert cost_body(None) is None
    assert cost_header(None) == "unknown"


def test_money_rounds_to_micro_dollars_and_holds_round_up() -> None:
    assert to_micros(D("0.0000001")) == 1
    assert to_micros(D("0.211")) == 211_000
    assert Cost(D("0.0000004"), False).header() == "0.000000"


# ---------------------------------------------------------------- the data


def test_a_price_needs_a_source_a_date_and_something_to_hold() -> None:
    with pytest.raises(ValidationError):
        Price(source="", as_of=dt.date(2026, 1, 1), per_image=(ImagePrice(usd=D(1)),))
    with pytest.raises(ValidationError):
        Price(source="x", as_of=dt.date(2026, 1, 1), tokens=GPT_IMAGE_2.tokens)
    with pytest.raises(ValidationError):
        ImagePrice(usd=D(-1))


def test_every_priced_catalog_model_prices_every_request_it_accepts() -> None:
    catalog = load_catalog()
    priced = [spec for spec in catalog if spec.price is not None]
    assert priced, "the packaged catalog prices no model"
    for spec in priced:
        price = spec.price
        assert price is not None
        assert price.source, spec.id
        assert price.as_of <= dt.date(2026, 12, 31), spec.id
        qualities = [*spec.qualities, None]
        sizes = [*spec.sizes, None]
        for quality in qualities:
            for size in sizes:
                hold = max_cost(price, n=spec.n_max, quality=quality, size=size)
                assert hold >= 0, (spec.id, quality, size)
                cost = cost_of(price, delivered=1, quality=quality, size=size)
                assert cost is not None
                # The cost of one delivered image never exceeds the hold for one.
                assert cost.amount <= max_cost(price, n=1, quality=quality, size=size)


# What the packaged catalog says one image costs before the call (the hold for n=1), for a
# request of each priced model. A model added with a price gets a line here.
PINNED = {
    ("openai/gpt-image-2", "high", "1024x1024"): "0.211",
    ("openai/gpt-image-2", "low", "1024x1536"): "0.005",
    ("openai/gpt-image-2", "medium", "1536x1024"): "0.041",
    ("openai/gpt-image-2", "high", "3840x2160"): "0.400",
    ("openai/gpt-image-2", None, None): "0.428",
    ("openai/gpt-image-2.5-sunburst", "high", "1024x1024"): "0.211",
    ("openai/gpt-image-2.5-flare", "low", "1024x1024"): "0.006",
    ("google/gemini-2.5-flash-image", None, "1344x768"): "0.039",
    ("google/gemini-3-pro-image", None, "2048x2048"): "0.134",
    ("google/gemini-3-pro-image", None, "4096x4096"): "0.24",
    ("google/gemini-3.1-flash-image", None, "1024x1024"): "0.0672",
    ("google/gemini-3.1-flash-image", None, "2048x2048"): "0.1008",
    ("google/gemini-3.1-flash-image", None, None): "0.1512",
    ("local/sketch", "high", "1024x1024"): "0",
    ("local/canvas", None, None): "0",
    ("local/classic", "hd", "1792x1024"): "0",
    ("bfl/flux-2-pro", None, "1024x1024"): "0.045",
    ("bfl/flux-2-pro", None, None): "0.075",
    ("bfl/flux-2-max", None, "1536x1024"): "0.10",
    ("bfl/flux-2-flex", None, None): "0.20",
    ("bfl/flux-2-klein-4b", None, "1024x1024"): "0.015",
    ("bfl/flux-2-klein-9b", None, "1024x1024"): "0.017",
    ("bfl/flux-pro-1.1", None, "1024x768"): "0.04",
    ("bfl/flux-pro-1.1-ultra", None, "1792x1024"): "0.06",
    ("bfl/flux-kontext-pro", None, None): "0.04",
    ("bfl/flux-kontext-max", None, None): "0.08",
    ("bfl/flux-3-image", None, "1920x1080"): "0.048",
    ("bfl/flux-3.1-image", "low", "1024x1024"): "0.11",
    ("bfl/flux-3.1-image", None, None): "0.28",
    ("bedrock/stable-image-ultra", None, "1024x1024"): "0.14",
    ("bedrock/stable-image-core", None, None): "0.04",
    ("bedrock/sd3.5-large", None, "1792x1024"): "0.08",
    ("stability/stable-image-ultra", None, None): "0.08",
    ("stability/stable-image-core", None, "640x1536"): "0.03",
    ("stability/sd3.5-large", None, None): "0.065",
    ("stability/sd3.5-large-turbo", None, None): "0.04",
    ("stability/sd3.5-medium", None, None): "0.035",
    ("stability/stable-image-inpaint", None, None): "0.05",
    ("bedrock/stable-image-inpaint", None, None): "0.07",
}


@pytest.mark.parametrize(("model", "quality", "size"), sorted(PINNED, key=str))
def test_catalog_prices(model: str, quality: str | None, size: str | None) -> None:
    spec = load_catalog().get(model)
    assert spec is not None
    assert spec.price is not None
    assert max_cost(spec.price, n=1, quality=quality, size=size) == D(PINNED[model, quality, size])


def test_every_priced_model_is_pinned_and_no_other_model_has_a_price() -> None:
    priced = {spec.id for spec in load_catalog() if spec.price is not None}
    assert priced == {model for model, _, _ in PINNED}


def test_price_rows_name_only_values_their_models_accept() -> None:
    for spec in load_catalog():
        if spec.price is None:
            continue
        for row in spec.price.per_image:
            assert row.quality == "*" or row.quality in spec.qualities, (spec.id, row)
            for size in row.sizes:
                if size in ("*", *spec.sizes):
                    continue
                width, _, height = size.partition("x")
                assert spec.free_size is not None, (spec.id, size)
                assert spec.free_size.violation(int(width), int(height)) is None, (spec.id, size)


def test_models_publish_their_price_with_its_source() -> None:
    catalog = load_catalog()
    spec = catalog.get("openai/gpt-image-2")
    assert spec is not None
    published = spec.capabilities()["price"]
    assert published["currency"] == "USD"
    assert published["source"].startswith("OpenAI pricing page")
    assert published["as_of"] == "2026-09-05"
    assert published["tokens"]["image_output"] == 30.0
    assert {"quality": "high", "sizes": ["1024x1024"], "usd": 0.211} in published["per_image"]
    unpriced = catalog.get("openai/gpt-image-2.6-flare")
    assert unpriced is not None
    assert unpriced.capabilities()["price"] is None


def test_a_per_image_bill_is_exact_only_when_one_row_fits_what_was_delivered() -> None:
    billed = Price(
        source="test",
        as_of=dt.date(2026, 6, 1),
        billed_per_image=True,
        per_image=(
            ImagePrice(quality="standard", usd=D("0.04")),
            ImagePrice(quality="hd", usd=D("0.08")),
        ),
    )
    exact = cost_of(billed, delivered=2, quality="hd", size="1024x1024")
    assert exact == Cost(D("0.16"), estimated=False)
    # The quality is not known: the dearer row is charged, as an estimate.
    assert cost_of(billed, delivered=1, quality=None, size=None) == Cost(D("0.08"), True)
