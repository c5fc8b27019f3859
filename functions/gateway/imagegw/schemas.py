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

from imagegw.errors import InvalidType, MalformedBody, MissingParameter, UnknownParameter
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
    try:
        document = json.loads(raw)
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
    # null means absent for every field, the required prompt included (missing, then).
    given = {key: value for key, value in document.items() if value is not None}
    try:
        return ImageGenerationRequest.model_validate(given)
    except ValidationError as exc:
        raise _first_problem(exc) from exc


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
