"""The parameter table is the one declaration: what validation enforces is what is published.

Each test reads a model's constraints only from what ``GET /v1/models`` publishes
(``ModelSpec.capabilities``), then shows validation agrees: every published value passes, a value
just outside is refused naming the parameter. A constraint enforced but not published fails here.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from imagegw import schemas
from imagegw.catalog import Catalog, ModelSpec, Resolution, load_catalog
from imagegw.errors import InvalidRequest
from imagegw.generation.delivery_policy import HTTP_DELIVERY
from imagegw.generation.validation import ValidatedRequest, validate
from imagegw.parameters import BY_NAME, FORWARDED_PARAMETERS, KNOWN_PARAMETERS, PARAMETERS
from imagegw.providers.base import ImageRequest
from imagegw.schemas import ImageGenerationRequest

CATALOG: Catalog = load_catalog()
SPECS = list(CATALOG)


def _check(spec: ModelSpec, **fields: Any) -> ValidatedRequest:
    body = ImageGenerationRequest.model_validate({"prompt": "a lighthouse", **fields})
    return validate(
        body,
        Resolution(spec.id, spec, spec.upstream_model),
        timeout_seconds=30,
        delivery=HTTP_DELIVERY,
    )


def _refused(spec: ModelSpec, **fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        _check(spec, **fields)
    return caught.value


def _companions(capabilities: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """What the published rules say must come with ``name=value``."""
    extra: dict[str, Any] = {}
    for rule in capabilities["rules"]:
        condition = rule["if"]
        if condition["parameter"] == name and condition.get("value", value) == value:
            for other, allowed in rule["then"].items():
                published = capabilities.get(f"{other}s", allowed)
                extra[other] = next(v for v in allowed if v in published)
    return extra


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.id)
def test_every_published_choice_is_accepted_and_nothing_else(spec: ModelSpec) -> None:
    published = spec.capabilities()
    for row in PARAMETERS:
        # Parameters with choices that this model checks: the forwarded ones it takes (and does
        # not ignore), and the ones every model takes (response_format).
        takes = spec.accepts(row.name) if row.forwarded else True
        if row.choices is None or not takes or row.name in spec.ignored_parameters:
            continue
        values = published[row.choices]
        for value in values:
            _check(spec, **{row.name: value}, **_companions(published, row.name, value))
        outside = "not-a-published-value"
        assert outside not in values
        if row.name == "size" and published["free_size"] is not None:
            outside = "7x7"
        assert _refused(spec, **{row.name: outside}).param == row.name


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.id)
def test_published_ranges_are_the_enforced_ones(spec: ModelSpec) -> None:
    published = spec.capabilities()
    assert published["n"]["min"] == 1
    _check(spec, n=published["n"]["max"])
    assert _refused(spec, n=published["n"]["max"] + 1).param == "n"
    _check(spec, prompt="a" * published["prompt_max_chars"])
    assert _refused(spec, prompt="a" * (published["prompt_max_chars"] + 1)).param == "prompt"
    for name, bounds in published["ranges"].items():
        for value in (bounds["min"], bounds["max"]):
            _check(spec, **{name: value}, **_companions(published, name, value))
        for value in (bounds["min"] - 1, bounds["max"] + 1):
            assert _refused(spec, **{name: value}, **_companions(published, name, value)).param == (
                name
            )


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.id)
def test_parameters_not_published_as_accepted_are_refused(spec: ModelSpec) -> None:
    published = set(spec.capabilities()["parameters"])
    samples = {"string": "x", "integer": 1, "boolean": True}
    for name in FORWARDED_PARAMETERS:
        if name in published:
            continue
        error = _refused(spec, **{name: samples[BY_NAME[name].json_type]})
        assert (error.param, error.code) == (name, "unsupported_parameter")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.id)
def test_published_rules_are_enforced(spec: ModelSpec) -> None:
    for rule in spec.capabilities()["rules"]:
        condition = rule["if"]
        name = condition["parameter"]
        value = condition.get("value", 50)
        for other, allowed in rule["then"].items():
            published = spec.capabilities().get(f"{other}s", [])
            outside = [v for v in published if v not in allowed]
            if other == "n" and spec.n_max > 1:
                outside = [2]
            if other == "stream":
                outside = [False]
            for bad in outside:
                error = _refused(spec, **{name: value, other: bad})
                # OpenAI's own body for a stream of n > 1 names 'input'; others name a side.
                assert error.param in (name, other, "input")


def test_the_request_model_has_exactly_the_table() -> None:
    fields = ImageGenerationRequest.model_fields
    assert tuple(fields) == KNOWN_PARAMETERS
    for row in PARAMETERS:
        assert fields[row.name].is_required() is row.required
        schema = ImageGenerationRequest.model_json_schema()["properties"][row.name]
        types = {option.get("type") for option in schema.get("anyOf", [schema])} - {"null"}
        assert types == {row.json_type}


def test_the_typing_view_of_the_request_model_matches_the_table() -> None:
    # schemas.py declares, for the type checker only, the attributes code reads by name.
    tree = ast.parse(Path(schemas.__file__).read_text(encoding="utf-8"))
    (view,) = (
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "ImageGenerationRequest"
    )
    declared = {
        node.target.id: ast.unparse(node.annotation)
        for node in view.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert {"prompt", "n", "response_format"} <= set(declared)
    for name, kind in declared.items():
        row = BY_NAME[name]
        assert kind == (row.type.__name__ if row.required else f"{row.type.__name__} | None")


def test_an_image_request_carries_every_forwarded_parameter() -> None:
    own = {"spec", "upstream_model", "prompt", "n", "timeout_seconds"}
    carried = {field.name for field in dataclasses.fields(ImageRequest)} - own
    # Besides: partial_images (a provider that streams renders that many) and an edit's inputs
    # (images, mask, input_fidelity: the edit request's own fields, generation/edit_request.py),
    # and max_answer_bytes (the operator's cap on an upstream answer, providers/base.py).
    assert carried == {
        *FORWARDED_PARAMETERS,
        "partial_images",
        "images",
        "mask",
        "input_fidelity",
        "max_answer_bytes",
    }


def test_a_catalog_entry_cannot_list_a_parameter_the_table_does_not_know() -> None:
    with pytest.raises(ValueError, match="not request parameters"):
        ModelSpec(id="x/y", provider="x", upstream_model="y", parameters=frozenset({"colour"}))
