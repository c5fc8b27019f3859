"""The request body: the model built from the parameter table, and parsing into it.

The fields come from ``parameters.PARAMETERS`` (one declaration per parameter); this module
only turns the table into a pydantic model (FastAPI reads it for the OpenAPI document) and a
body into an instance. Imported on first use: a cold start that answers ``GET /v1/models``
never builds it.

Parsing is strict about types (``"n": "2"`` is an error, not a 2) and about names (an unknown
parameter is an error, not ignored). JSON ``null`` means "not given", as the OpenAI SDK sends
``null`` for an explicit ``None``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from imagegw.errors import (
    InvalidRequest,
    InvalidType,
    InvalidValue,
    MalformedBody,
    MissingParameter,
    UnknownParameter,
)
from imagegw.parameters import KNOWN_PARAMETERS, PARAMETERS

_STRICT: dict[type, Any] = {str: StrictStr, int: StrictInt, bool: StrictBool}


class RequestBody(BaseModel):
    """What every request model shares: strict names, immutable, ``null`` as absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def given(self) -> dict[str, Any]:
        """The parameters the caller actually set (``null`` counts as not set)."""
        return self.model_dump(exclude_none=True)


_fields: dict[str, Any] = {
    row.name: (_STRICT[row.type], ...) if row.required else (_STRICT[row.type] | None, None)
    for row in PARAMETERS
}

if TYPE_CHECKING:

    class ImageGenerationRequest(RequestBody):
        """Typing view of the generated model: the attributes code reads by name (a unit test
        holds each to its row of the table). Others are read through ``given()``."""

        prompt: str
        model: str | None
        n: int | None
        response_format: str | None
        stream: bool | None
        partial_images: int | None

else:
    ImageGenerationRequest = create_model(
        "ImageGenerationRequest",
        __base__=RequestBody,
        __doc__="``POST /v1/images/generations``. Per-model rules live in the catalog.",
        **_fields,
    )

__all__ = ["KNOWN_PARAMETERS", "ImageGenerationRequest", "parse_generation_request"]

_TYPE_NAMES = {
    "int_type": "an integer",
    "string_type": "a string",
    "bool_type": "a boolean",
}


def parse_generation_request(raw: bytes) -> ImageGenerationRequest:
    """Bytes of a request body to a typed request, or the ``InvalidRequest`` that says why not."""
    document = load_json_object(raw, known=ImageGenerationRequest.model_fields)
    # null means absent for every field, the required prompt included (missing, then).
    given = {key: value for key, value in document.items() if value is not None}
    try:
        return ImageGenerationRequest.model_validate(given)
    except ValidationError as exc:
        raise _first_problem(exc) from exc


def load_json_object(raw: bytes, *, known: Collection[str] | None = None) -> dict[str, Any]:
    """A client's JSON body as an object, or the ``InvalidRequest`` that says why not. Total.

    Refuses what no request can hold before anything reads it: nesting beyond the recursion
    limit, lone surrogates, integers beyond ``MAX_INTEGER_DIGITS``, NaN and Infinity
    (``first_unusable_value``; values are checked for the ``known`` names, every name when
    None). Every parser of a client's JSON body goes through here.
    """
    try:
        document = json.loads(
            raw,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_NotANumber,
        )
    except RecursionError as exc:
        # json recurses once per nesting level; a hostile body must not become a 500.
        raise MalformedBody(
            "The request body's JSON is nested too deeply to be an image request."
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBody(
            f"The request body is not valid JSON ({exc.__class__.__name__}: {exc}). "
            "Send a JSON object with Content-Type: application/json."
        ) from exc
    if not isinstance(document, dict):
        raise MalformedBody("The request body must be a JSON object.")
    problem = first_unusable_value(document, known=known)
    if problem is not None:
        raise problem
    return document


# Longer integer literals are refused before Python converts them: int() of a long digit string
# costs quadratic time and, beyond 4,300 digits, raises a ValueError of its own. No request field
# needs more than a few digits.
MAX_INTEGER_DIGITS = 100


class _HugeInteger:
    """An integer literal too long to be any request value, kept as its digit count."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))


class _NotANumber:
    """``NaN``, ``Infinity`` or a float literal beyond the float range: not JSON numbers."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _bounded_int(text: str) -> int | _HugeInteger:
    return _HugeInteger(text) if len(text) > MAX_INTEGER_DIGITS else int(text)


def _finite_float(text: str) -> float | _NotANumber:
    number = float(text)
    return number if math.isfinite(number) else _NotANumber(text[:20])


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` holds a UTF-16 surrogate, which no UTF-8 text can (JSON's "\\ud800")."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable_name(name: str) -> str:
    """``name`` with any lone surrogate written as its escape, so that it can be shown."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def first_unusable_value(
    document: dict[str, Any], *, known: Collection[str] | None = None
) -> InvalidRequest | None:
    """The error for the first value no request can hold, named by its top-level parameter.

    Lone surrogates (in names, or at any depth in the value of a known parameter), integers of
    more than ``MAX_INTEGER_DIGITS`` digits, NaN, Infinity and float literals beyond the float
    range. Unknown parameters are left to the schema, which names them (their values are never
    read). Walked without recursion: a field may hold a deeply nested value.
    """
    for name in document:
        if has_lone_surrogate(name):
            shown = printable_name(name)
            # No known parameter has a surrogate in its name: an unknown one, said precisely.
            return UnknownParameter(
                f"Invalid parameter name '{shown}': it contains a lone UTF-16 surrogate, which "
                "is not a Unicode character. Send the request body as valid UTF-8 JSON.",
                param=shown,
                code="invalid_unicode",
            )
    for name, value in document.items():
        if known is not None and name not in known:
            continue
        pending: list[Any] = [value]
        while pending:
            item = pending.pop()
            problem = _unusable(name, item)
            if problem is not None:
                return problem
            if isinstance(item, dict):
                pending.extend(item.keys())
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
    return None


def _unusable(name: str, value: Any) -> InvalidRequest | None:
    if isinstance(value, str) and has_lone_surrogate(value):
        return InvalidValue(
            f"Invalid '{name}': the text contains a lone UTF-16 surrogate (such as \\ud800), "
            "which is not a Unicode character. Send the text as valid UTF-8.",
            param=name,
            code="invalid_unicode",
        )
    if isinstance(value, _HugeInteger):
        return InvalidValue(
            f"Invalid '{name}': an integer of {value.digits} digits is larger than any value "
            "this parameter takes.",
            param=name,
            code="integer_above_max_value",
        )
    if isinstance(value, _NotANumber):
        return MalformedBody(
            f"Invalid '{name}': {value.text} is not a JSON number (JSON has no NaN or "
            "Infinity, and numbers must fit a double).",
            param=name,
        )
    return None


def _first_problem(exc: ValidationError) -> Exception:
    problems = exc.errors(include_url=False)
    # Unknown names first: they explain any other error best.
    problems.sort(key=lambda p: p["type"] != "extra_forbidden")
    problem = problems[0]
    name = ".".join(str(part) for part in problem["loc"])
    param = name or None
    kind = problem["type"]
    if kind == "extra_forbidden":
        # The caller's own name, even "" (found by fuzzing: it used to read 'None').
        return UnknownParameter(
            f"Unknown parameter: '{name}'. Parameters this gateway accepts: "
            f"{', '.join(KNOWN_PARAMETERS)}.",
            param=name,
        )
    if kind == "missing":
        return MissingParameter(f"Missing required parameter: '{param}'.", param=param)
    expected = _TYPE_NAMES.get(kind, "a different type")
    got = type(problem.get("input")).__name__
    return InvalidType(
        f"Invalid type for '{param}': expected {expected}, but got a value of type {got}.",
        param=param,
    )
