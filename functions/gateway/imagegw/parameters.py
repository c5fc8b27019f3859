"""The request parameters, declared once: the parameter table.

Each ``Parameter`` is one request parameter: its name, JSON type, role (checked by the use case,
forwarded to the provider when the model takes it, or about delivery or streaming), the catalog
field that lists the values a model accepts, and bounds. Everything else is derived from this
table: the request model and so the OpenAPI schema (``schemas.py``), validation's loop and value
checks (``generation/validation.py``), what a provider receives (``ImageRequest`` in
``providers/base.py``), what fallbacks compare, and the capabilities ``GET /v1/models``
publishes (``ModelSpec.capabilities``). Adding a parameter is one row here, its catalog values in
``models.toml`` when it has some, and each provider's translation.

Plain data without pydantic: the catalog reads it on every cold start, and the request model
built from it is only needed once a request is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CORE = "core"  # prompt, model, n: checked by the use case itself, always sent
    OUTPUT = "output"  # decides what the images are; forwarded when the model takes it
    IDENTITY = "identity"  # tells the upstream who asked; forwarded when the model takes it
    EXTENSION = "extension"  # a documented extension beyond OpenAI's contract (e.g. Imagen's)
    DELIVERY = "delivery"  # how the gateway hands the images back; never forwarded
    STREAMING = "streaming"  # how the answer is sent (stream, partial_images)


FORWARDED_ROLES = frozenset({Role.OUTPUT, Role.IDENTITY, Role.EXTENSION})
_JSON_TYPES: dict[type, str] = {str: "string", int: "integer", bool: "boolean"}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: type  # str, int or bool: a JSON string, integer or boolean, strictly
    role: Role
    # The ModelSpec field listing the values a model accepts; published under the same name.
    choices: str | None = None
    # Bounds of an integer parameter, the same for every model that takes it.
    minimum: int | None = None
    maximum: int | None = None
    required: bool = False

    @property
    def json_type(self) -> str:
        return _JSON_TYPES[self.type]

    @property
    def forwarded(self) -> bool:
        return self.role in FORWARDED_ROLES


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("prompt", str, Role.CORE, required=True),
    Parameter("model", str, Role.CORE),
    Parameter("n", int, Role.CORE),
    Parameter("size", str, Role.OUTPUT, choices="sizes"),
    Parameter("quality", str, Role.OUTPUT, choices="qualities"),
    Parameter("style", str, Role.OUTPUT, choices="styles"),
    Parameter("response_format", str, Role.DELIVERY, choices="response_formats"),
    Parameter("background", str, Role.OUTPUT, choices="backgrounds"),
    Parameter("output_format", str, Role.OUTPUT, choices="output_formats"),
    Parameter("output_compression", int, Role.OUTPUT, minimum=0, maximum=100),
    Parameter("moderation", str, Role.OUTPUT, choices="moderations"),
    Parameter("user", str, Role.IDENTITY),
    Parameter("safety_identifier", str, Role.IDENTITY),
    Parameter("complexity", str, Role.OUTPUT, choices="complexities"),
    # Documented extensions of some models (Google Imagen, Stability); the catalog says which.
    Parameter("watermark", bool, Role.EXTENSION),
    Parameter("person_generation", str, Role.EXTENSION, choices="person_generations"),
    # Stability's seed (0 to 4294967294, 0 meaning random) and negative prompt.
    Parameter("seed", int, Role.EXTENSION, minimum=0, maximum=4_294_967_294),
    Parameter("negative_prompt", str, Role.EXTENSION),
    # Stability's inpainting: pixels the mask is grown by (and feathered over) before the edit;
    # not sent: Stability's default (5).
    Parameter("grow_mask", int, Role.EXTENSION, minimum=0, maximum=100),
    Parameter("stream", bool, Role.STREAMING),
    Parameter("partial_images", int, Role.STREAMING, minimum=0, maximum=3),
)

BY_NAME: dict[str, Parameter] = {row.name: row for row in PARAMETERS}
KNOWN_PARAMETERS = tuple(BY_NAME)
# What a provider may receive, in the order they are checked and forwarded.
FORWARDED_PARAMETERS = tuple(row.name for row in PARAMETERS if row.forwarded)
# Parameters a catalog entry may list as accepted (``parameters`` in models.toml).
MODEL_PARAMETERS = tuple(
    row.name for row in PARAMETERS if row.forwarded or row.role is Role.STREAMING
)


def names(role: Role) -> tuple[str, ...]:
    return tuple(row.name for row in PARAMETERS if row.role is role)


class ResponseFormat(StrEnum):
    """How the images come back: inline base64, or links (stored by the gateway)."""

    B64_JSON = "b64_json"
    URL = "url"


# Rules between parameters that validation enforces, published with each model's capabilities.
COMPRESSIBLE_FORMATS = ("jpeg", "webp")  # output_compression applies to these only
TRANSPARENT_FORMATS = ("png", "webp")  # background "transparent" needs one of these
