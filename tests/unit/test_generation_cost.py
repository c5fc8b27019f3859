"""The catalog's prices applied to requests: holds over fallbacks, edits' inputs, streams."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from imagegw.catalog import load_catalog
from imagegw.catalog.prices import Cost
from imagegw.generation.cost import candidates, generation_cost, input_megapixels, spend_ceiling
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.providers.inputs import InputImage

from support.fakes import TINY_PNG

CATALOG = load_catalog()
D = Decimal


def request(model: str, **values: object) -> ImageRequest:
    spec = CATALOG.get(model)
    assert spec is not None
    fields: dict[str, object] = {"prompt": "a kite", "n": 1, "timeout_seconds": 30.0}
    fields.update(values)
    return ImageRequest(spec=spec, upstream_model=spec.upstream_model, **fields)  # type: ignore[arg-type]


def picture(width: int, height: int) -> InputImage:
    return InputImage(data=TINY_PNG, format="png", width=width, height=height, has_alpha=False)


def delivered(count: int, **values: object) -> ImageResult:
    images = [GeneratedImage(media_type="image/png", data=TINY_PNG) for _ in range(count)]
    return ImageResult(images=images, **values)  # type: ignore[arg-type]


def test_the_ceiling_is_n_images_at_the_dearest_price_plus_the_prompt() -> None:
    asked = request("openai/gpt-image-2", n=3, quality="high", size="1024x1024")
    spec = asked.spec
    # $0.211 per image, and "a kite" (6 characters) at $5 per 1M.
    assert spend_ceiling([spec], asked) == D("0.633") + D(6 * 5) / 1_000_000


def test_streamed_partial_images_raise_the_ceiling() -> None:
    asked = request("openai/gpt-image-2", quality="low", size="1024x1024", partial_images=3)
    plain = spend_ceiling([asked.spec], dataclasses.replace(asked, partial_images=0))
    assert plain is not None
    assert spend_ceiling([asked.spec], asked, partial_images=3) == plain + D("0.009")


def test_an_unpriced_model_has_no_ceiling_and_an_unpriced_fallback_does_not_lower_one() -> None:
    unpriced = request("openai/gpt-image-2.6-flare")
    assert spend_ceiling([unpriced.spec], unpriced) is None
    asked = request("openai/gpt-image-2", quality="low", size="1024x1024")
    assert spend_ceiling([asked.spec, unpriced.spec], asked) == spend_ceiling([asked.spec], asked)


def test_the_ceiling_covers_the_dearest_fallback() -> None:
    asked = request("google/gemini-2.5-flash-image", size="1024x1024")
    dearer = CATALOG.get("google/gemini-3-pro-image")
    assert dearer is not None
    ceiling = spend_ceiling([asked.spec, dearer], asked)
    assert ceiling == D("0.134") + D(6 * 2) / 1_000_000


def test_candidates_are_the_model_and_its_catalog_fallbacks() -> None:
    for spec in CATALOG:
        found = candidates(CATALOG, spec)
        assert found[0] is spec
        assert [model.id for model in found[1:]] == list(spec.fallbacks)


def test_an_edit_holds_its_input_megapixels_where_the_price_bills_them() -> None:
    edit = request("bfl/flux-2-pro", n=2, size="1024x1024", images=(picture(1024, 1024),))
    assert input_megapixels(edit) == 2  # 1.05 MP, rounded up
    generation = dataclasses.replace(edit, images=())
    with_inputs = spend_ceiling([edit.spec], edit)
    without = spend_ceiling([edit.spec], generation)
    assert with_inputs is not None
    assert without is not None
    # $0.015 per input megapixel, for each of the two images made.
    assert with_inputs - without == D("0.015") * 2 * 2


def test_an_edit_is_charged_its_input_image_tokens_from_usage() -> None:
    edit = request("openai/gpt-image-2", images=(picture(512, 512), picture(512, 512)))
    usage = {
        "input_tokens": 1200,
        "output_tokens": 1000,
        "input_tokens_details": {"text_tokens": 200, "image_tokens": 1000},
    }
    cost = generation_cost(edit.spec, edit, delivered(1, usage=usage))
    assert cost == Cost(D(200 * 5 + 1000 * 8 + 1000 * 30) / 1_000_000, estimated=False)
    unsplit = {"input_tokens": 1200, "output_tokens": 1000}
    cost = generation_cost(edit.spec, edit, delivered(1, usage=unsplit))
    assert cost == Cost(D(1200 * 8 + 1000 * 30) / 1_000_000, estimated=True)


def test_a_reported_upstream_cost_is_the_cost() -> None:
    asked = request("bfl/flux-2-pro", size="1024x1024")
    cost = generation_cost(asked.spec, asked, delivered(1, upstream_cost_usd=D("0.045")))
    assert cost == Cost(D("0.045"), estimated=False)


def test_the_images_settings_price_them_and_the_request_fills_in() -> None:
    asked = request("google/gemini-3-pro-image", n=2, size="4096x4096")
    # Google said nothing of the size: the one asked prices the images.
    assert generation_cost(asked.spec, asked, delivered(2)) == Cost(D("0.48"), estimated=True)
    # The size the images came in wins over the one asked.
    smaller = delivered(2, size="2048x2048")
    assert generation_cost(asked.spec, asked, smaller) == Cost(D("0.268"), estimated=True)
