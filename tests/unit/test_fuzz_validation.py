"""Hypothesis on the request parser and validator: any input is a request or a clean 400.

Three sources of input: arbitrary bytes, arbitrary JSON, and bodies assembled from the names and
values the catalog knows (so that most get deep into validation). For each model of the catalog,
the outcome is either a validated request whose every value the model accepts, or an
``InvalidRequest`` (400, OpenAI envelope, ``param`` naming a request field), never anything else.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagegw.catalog import Resolution, load_catalog
from imagegw.errors import InvalidRequest, UnknownParameter, render
from imagegw.generation.delivery_policy import HTTP_DELIVERY
from imagegw.generation.validation import validate
from imagegw.schemas import KNOWN_PARAMETERS, parse_generation_request

CATALOG = load_catalog()
SPECS = list(CATALOG)
FIELDS = (*KNOWN_PARAMETERS, "prompt", "unknown_field")
VALUES: list[Any] = sorted(
    {
        value
        for spec in SPECS
        for values in (
            spec.sizes,
            spec.qualities,
            spec.styles,
            spec.backgrounds,
            spec.output_formats,
            spec.moderations,
            spec.complexities,
        )
        for value in values
    }
    | {"b64_json", "url", "2048x2048", "1x1", "0x0", "16x4096", "auto", ""}
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
plausible_value = (
    st.sampled_from(VALUES)
    | st.integers(min_value=-3, max_value=12)
    | st.text(max_size=40)
    | st.none()
    | st.booleans()
    | st.sampled_from([spec.id for spec in SPECS])
)
plausible_body = st.dictionaries(st.sampled_from(FIELDS), plausible_value, max_size=8)


def check_outcome(raw: bytes) -> None:
    try:
        body = parse_generation_request(raw)
    except InvalidRequest as error:
        assert_clean(error)
        return
    for spec in SPECS:
        try:
            validated = validate(
                body,
                Resolution(spec.id, spec, spec.upstream_model),
                timeout_seconds=60,
                delivery=HTTP_DELIVERY,
            )
        except InvalidRequest as error:
            assert_clean(error)
            continue
        request = validated.image_request
        assert 1 <= request.n <= spec.n_max
        assert validated.response_format in ("b64_json", "url")
        assert request.prompt.strip()
        assert len(request.prompt) <= spec.prompt_max_chars
        for name, allowed in (
            ("quality", spec.qualities),
            ("style", spec.styles),
            ("background", spec.backgrounds),
            ("output_format", spec.output_formats),
        ):
            value = getattr(request, name)
            assert value is None or value in allowed, (name, value, spec.id)
        if request.size is not None and request.size not in spec.sizes:
            assert spec.free_size is not None
        for name in validated.ignored_parameters:
            assert name in spec.ignored_parameters


def assert_clean(error: InvalidRequest) -> None:
    assert error.status == 400
    rendered = json.loads(render(error))
    assert set(rendered["error"]) == {"message", "type", "param", "code"}
    assert rendered["error"]["message"]
    if isinstance(error, UnknownParameter):
        assert isinstance(error.param, str)  # the caller's own field name, "" included
    else:
        assert error.param is None or error.param.split(".")[0] in FIELDS


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(raw: bytes) -> None:
    check_outcome(raw)


@FUZZ
@given(json_values)
@example({"": False})  # once answered "Unknown parameter: 'None'" with a null param
def test_any_json(document: Any) -> None:
    check_outcome(json.dumps(document).encode())


@FUZZ
@given(plausible_body)
def test_bodies_made_of_what_the_catalog_knows(document: dict[str, Any]) -> None:
    check_outcome(json.dumps(document).encode())


@FUZZ
@given(st.text(max_size=50), st.integers(min_value=0, max_value=10))
def test_valid_prompts_with_any_n_never_surprise(prompt: str, n: int) -> None:
    check_outcome(json.dumps({"prompt": prompt, "n": n}).encode())


# ------------------------------------------------------------------------------ hostile values
#
# Bodies written as JSON text, so that they can hold what json.dumps of a Python value never
# writes: integers beyond Python's 4,300-digit conversion limit, NaN and Infinity, nesting
# deeper than the parser's recursion limit. Text comes from every Unicode category, lone
# surrogates (escaped, as JSON carries them), controls, private use and unassigned included.

any_character = st.characters(exclude_categories=[])
surrogate = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)
odd_text = st.one_of(
    st.text(any_character, max_size=20),
    st.lists(st.one_of(any_character, surrogate), max_size=8).map("".join),
    st.sampled_from(["\ud800", "a\udfff", "\ud83e", "\u202e\u200b\ufeff", "\x00", "\uffff"]),
)
raw_value = st.one_of(
    odd_text.map(json.dumps),
    st.integers(min_value=101, max_value=6000).map(lambda digits: "9" * digits),
    st.integers(min_value=101, max_value=6000).map(lambda digits: "-" + "1" * digits),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1e-999"]),
    st.sampled_from([1, 100, 2000, 100_000]).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=50).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    plausible_value.map(json.dumps),
)
raw_name = st.one_of(st.sampled_from(FIELDS), odd_text)


@FUZZ
@given(st.lists(st.tuples(raw_name, raw_value), max_size=6), odd_text)
@example([("n", "9" * 5000)], "a fox")
@example([("\ud800", "1")], "a fox")
@example([("size", '"\\ud800"')], "a fox")
@example([("n", "NaN")], "a fox")
def test_hostile_values_in_every_field_are_a_clean_400(
    members: list[tuple[str, str]], prompt: str
) -> None:
    fields = [f"{json.dumps(name)}: {value}" for name, value in members]
    fields.append(f'"prompt": {json.dumps(prompt)}')
    raw = ("{" + ", ".join(fields) + "}").encode("ascii")
    check_outcome(raw)
    try:
        body = parse_generation_request(raw)
    except InvalidRequest:
        return
    # Whatever is accepted can be written back as UTF-8: no surrogate got through.
    json.dumps(body.given(), ensure_ascii=False).encode("utf-8")
