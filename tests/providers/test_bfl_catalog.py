"""The catalog's BFL entries against BFL's schemas as the fake writes them (independently):
every size the gateway accepts for a model is a request BFL takes."""

from __future__ import annotations

import pytest

from imagegw.catalog import Catalog, ModelSpec
from imagegw.providers.base import ImageRequest
from imagegw.providers.bfl import shapes

from support.fake_bfl import SCHEMAS, check_body


def _bfl_models(catalog: Catalog) -> list[ModelSpec]:
    return [spec for spec in catalog if spec.provider == "bfl"]


def test_the_catalog_serves_the_bfl_families(catalog: Catalog) -> None:
    ids = {spec.id for spec in _bfl_models(catalog)}
    assert {
        "bfl/flux-2-pro",
        "bfl/flux-2-max",
        "bfl/flux-2-flex",
        "bfl/flux-2-klein-4b",
        "bfl/flux-2-klein-9b",
        "bfl/flux-pro-1.1",
        "bfl/flux-pro-1.1-ultra",
        "bfl/flux-kontext-pro",
        "bfl/flux-kontext-max",
        "bfl/flux-3-image",
        "bfl/flux-3.1-image",
    } <= ids


def test_unconfirmed_models_ship_disabled_and_say_why(catalog: Catalog) -> None:
    for spec in _bfl_models(catalog):
        if spec.id.startswith("bfl/flux-3"):
            assert not spec.enabled
            assert "disabled until confirmed" in spec.lifecycle_note
        else:
            assert spec.enabled
            assert spec.lifecycle_note


def test_every_accepted_size_is_a_body_bfl_takes(catalog: Catalog) -> None:
    for spec in _bfl_models(catalog):
        names = [spec.upstream_model, *spec.snapshots]
        for name in names:
            assert name in SCHEMAS, name
        formats = [None, *spec.output_formats]
        for size in spec.sizes:
            for output_format in formats:
                request = ImageRequest(
                    spec=spec,
                    upstream_model=spec.upstream_model,
                    prompt="p",
                    n=1,
                    timeout_seconds=1,
                    size=size,
                    output_format=output_format,
                )
                check_body(spec.upstream_model, shapes.submit_body(request).body)


@pytest.mark.parametrize("model", ["bfl/flux-2-pro", "bfl/flux-pro-1.1", "bfl/flux-3.1-image"])
def test_the_free_size_rules_corners_are_bodies_bfl_takes(catalog: Catalog, model: str) -> None:
    spec = catalog.get(model)
    assert spec is not None
    rule = spec.free_size
    assert rule is not None
    step = rule.multiple_of
    corners = [(rule.min_edge, rule.min_edge), (step * (rule.max_edge // step), rule.min_edge)]
    for width, height in corners:
        if rule.violation(width, height) is None:
            check_body(spec.upstream_model, {"prompt": "p", "width": width, "height": height})
