"""The model catalog: loads the data file, resolves what callers send, knows shutdown dates.

The catalog is data (``models.toml``); this module only reads and checks it. Nothing here knows
a provider by name: capabilities travel with each ``ModelSpec``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from imagegw.catalog.prices import Price
from imagegw.errors import ModelNotFound, ModelRetired, ModelUnavailable
from imagegw.parameters import (
    COMPRESSIBLE_FORMATS,
    MODEL_PARAMETERS,
    PARAMETERS,
    TRANSPARENT_FORMATS,
    ResponseFormat,
)

PACKAGED_CATALOG = Path(__file__).with_name("models.toml")
# The packaged models.toml already parsed, as JSON, with the SHA-256 of the text it came from.
# json reads it in a tenth of a millisecond; tomllib (pure Python) needs about 5 ms with its
# import, on every cold start. Used only while the digest matches models.toml, which stays the
# file to edit: `make catalog` rewrites this copy, and a unit test says when it is stale.
PARSED_CATALOG = Path(__file__).with_name("models.parsed.json")

# A bare id (no "provider/") is an OpenAI id, as in every OpenAI SDK.
DEFAULT_PROVIDER_PREFIX = "openai"


class FreeSizeRule(BaseModel):
    """Any ``WxH`` within bounds, as gpt-image-2 and later accept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiple_of: int = Field(gt=0)
    # Shortest side allowed (FLUX 1.1 [pro]: 256); 1 means only the pixel count bounds it.
    min_edge: int = Field(default=1, ge=1)
    max_edge: int = Field(gt=0)
    max_aspect: float = Field(ge=1.0)
    min_pixels: int = Field(ge=1)
    max_pixels: int = Field(ge=1)

    def violation(self, width: int, height: int) -> str | None:
        """Why ``width x height`` is outside the rule, or None when it is inside."""
        if width % self.multiple_of or height % self.multiple_of:
            return f"both sides must be multiples of {self.multiple_of}"
        if min(width, height) < self.min_edge:
            return f"the shortest side must be at least {self.min_edge}"
        if max(width, height) > self.max_edge:
            return f"the longest side must be at most {self.max_edge}"
        if max(width, height) / min(width, height) > self.max_aspect:
            return (
                f"the aspect ratio must be between 1:{self.max_aspect:g} and {self.max_aspect:g}:1"
            )
        pixels = width * height
        if not self.min_pixels <= pixels <= self.max_pixels:
            return (
                f"the total pixel count must be between {self.min_pixels:,} and {self.max_pixels:,}"
            )
        return None

    def describe(self) -> str:
        shortest = f"shortest side >= {self.min_edge}, " if self.min_edge > 1 else ""
        return (
            f"any WxH with sides multiples of {self.multiple_of}, {shortest}"
            f"longest side <= {self.max_edge}, "
            f"aspect ratio within {self.max_aspect:g}:1, and {self.min_pixels:,} to "
            f"{self.max_pixels:,} pixels"
        )


class ModelSpec(BaseModel):
    """One catalog entry: identity, lifecycle and capabilities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    provider: str
    upstream_model: str
    description: str = ""
    created: int = 0
    owned_by: str | None = None
    aliases: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()

    n_max: int = Field(default=1, ge=1)
    sizes: tuple[str, ...] = ()
    default_size: str | None = None
    free_size: FreeSizeRule | None = None
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    moderations: tuple[str, ...] = ()
    complexities: tuple[str, ...] = ()
    person_generations: tuple[str, ...] = ()
    parameters: frozenset[str] = frozenset()
    ignored_parameters: frozenset[str] = frozenset()
    forwards_response_format: bool = False
    prompt_max_chars: int = Field(default=32000, ge=1)
    # Edits (POST /v1/images/edits): how many input images the model takes (0: it does not
    # edit), whether it takes a mask, and the input_fidelity values it takes (none: refused).
    max_input_images: int = Field(default=0, ge=0, le=16)
    masks: bool = False
    # The model repaints only what a mask marks (an inpainting model): an edit without one is
    # refused rather than sent to do nothing, or the whole image.
    mask_required: bool = False
    input_fidelities: tuple[str, ...] = ()
    # False: an edit-only model (Stability's inpainting services): it serves POST
    # /v1/images/edits and refuses generations with a 400 that says so.
    generations: bool = True
    # How the provider reaches the model (which API, which size table): read only by the
    # provider named in ``provider``, so a new upstream model of a known kind is a data edit.
    # Written as a TOML table; held as sorted pairs so the spec stays hashable.
    upstream_options: tuple[tuple[str, str], ...] = ()

    shutdown_date: dt.date | None = None
    replacement: str | None = None
    redirect: bool = False
    # The provider calls the model legacy (still served, replacement advised) without a date.
    legacy: bool = False
    # What is known about the model's status upstream, with its sources' uncertainty (published
    # in GET /v1/models): disputed retirements, unconfirmed request shapes.
    lifecycle_note: str = ""
    # False: in the catalog but not served until an operator enables it (IMAGEGW_ENABLED_MODELS),
    # for models whose upstream contract is not confirmed.
    enabled: bool = True
    # Models that may serve instead while this one's provider is down or rate-limiting, in order
    # of preference; each is used only for requests it serves identically (fallbacks.py).
    fallbacks: tuple[str, ...] = ()
    # What an image costs (prices.py); None: no known price, and answers say so.
    price: Price | None = None

    @field_validator("upstream_options", mode="before")
    @classmethod
    def _options_from_table(cls, value: Any) -> Any:
        return tuple(sorted(value.items())) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if "/" not in self.id:
            raise ValueError(f"model id {self.id!r} must be 'provider/name'")
        unknown = self.parameters - set(MODEL_PARAMETERS)
        if unknown:
            raise ValueError(
                f"{self.id}: parameters {sorted(unknown)} are not request parameters a model can "
                f"take (schemas.py): {', '.join(MODEL_PARAMETERS)}"
            )
        if not self.ignored_parameters <= self.parameters:
            raise ValueError(f"{self.id}: ignored_parameters must also be listed in parameters")
        if self.redirect and not self.replacement:
            raise ValueError(f"{self.id}: redirect needs a replacement")
        if self.default_size is not None and self.sizes and self.default_size not in self.sizes:
            raise ValueError(f"{self.id}: default_size must be one of sizes")
        if (self.masks or self.input_fidelities) and not self.max_input_images:
            raise ValueError(f"{self.id}: masks and input_fidelities need max_input_images")
        if self.mask_required and not self.masks:
            raise ValueError(f"{self.id}: mask_required needs masks")
        if not self.generations:
            if not self.edits:
                raise ValueError(f"{self.id}: a model that does not generate must edit")
            if self.fallbacks:
                # Edits never fall back (generation/edits.py): fallbacks would never be used.
                raise ValueError(f"{self.id}: an edit-only model has no fallbacks")
        return self

    def is_retired(self, today: dt.date) -> bool:
        return self.shutdown_date is not None and today >= self.shutdown_date

    def upstream_option(self, name: str) -> str | None:
        return dict(self.upstream_options).get(name)

    def accepts(self, parameter: str) -> bool:
        return parameter in self.parameters

    @property
    def response_formats(self) -> tuple[str, ...]:
        # Every model: the gateway stores images itself when a link is asked for.
        return tuple(value.value for value in ResponseFormat)

    @property
    def edits(self) -> bool:
        return self.max_input_images > 0

    def edit_capabilities(self) -> dict[str, Any] | None:
        """What ``GET /v1/models`` says about edits; None for a model that does not edit."""
        if not self.edits:
            return None
        return {
            "max_input_images": self.max_input_images,
            "mask": self.masks,
            "mask_required": self.mask_required,
            "input_fidelities": list(self.input_fidelities),
        }

    def capabilities(self) -> dict[str, Any]:
        """What ``GET /v1/models`` publishes: every constraint validation enforces.

        The accepted values of each parameter come from the parameter table (schemas.py): a
        parameter with ``choices`` publishes the catalog field of that name, one with bounds
        publishes them under ``ranges``, so a new parameter is published without an edit here.
        """
        published: dict[str, Any] = {
            "provider": self.provider,
            "description": self.description,
            # False: the model only edits (POST /v1/images/edits); generations are refused.
            "generations": self.generations,
            "n": {"min": 1, "max": self.n_max},
            "free_size": self.free_size.model_dump() if self.free_size else None,
        }
        ranges: dict[str, dict[str, int]] = {}
        for row in PARAMETERS:
            if row.choices is not None:
                published[row.choices] = list(getattr(self, row.choices))
            taken = self.accepts(row.name) or not row.forwarded
            if row.minimum is not None and row.maximum is not None and taken:
                ranges[row.name] = {"min": row.minimum, "max": row.maximum}
        published.update(
            parameters=sorted(self.parameters),
            ignored_parameters=sorted(self.ignored_parameters),
            ranges=ranges,
            rules=self._rules(),
            prompt_max_chars=self.prompt_max_chars,
            edits=self.edit_capabilities(),
            aliases=list(self.aliases),
            snapshots=list(self.snapshots),
            replacement=self.replacement,
            fallbacks=list(self.fallbacks),
            lifecycle_note=self.lifecycle_note or None,
            price=self.price.published() if self.price is not None else None,
        )
        return published

    def _rules(self) -> list[dict[str, Any]]:
        """The rules between parameters that apply to this model."""
        rules: list[dict[str, Any]] = []
        if self.accepts("output_compression"):
            rules.append(
                {
                    "if": {"parameter": "output_compression"},
                    "then": {"output_format": list(COMPRESSIBLE_FORMATS)},
                }
            )
        if "transparent" in self.backgrounds:
            rules.append(
                {
                    "if": {"parameter": "background", "value": "transparent"},
                    "then": {"output_format": list(TRANSPARENT_FORMATS)},
                }
            )
        # Streaming (every model): one image per stream; partial images only in a stream.
        rules.append({"if": {"parameter": "stream", "value": True}, "then": {"n": [1]}})
        rules.append({"if": {"parameter": "partial_images"}, "then": {"stream": [True]}})
        return rules


@dataclass(frozen=True)
class Resolution:
    """What a requested id resolves to.

    ``spec`` serves the call; ``upstream_model`` is what is sent upstream (a pinned snapshot stays
    pinned); ``redirected_from`` is set when a retired model was redirected by the catalog.
    """

    requested: str
    spec: ModelSpec
    upstream_model: str
    redirected_from: ModelSpec | None = None


class CatalogError(Exception):
    """The catalog data file is invalid. Raised at load, never on a request."""


class Catalog:
    def __init__(self, specs: list[ModelSpec]) -> None:
        self._specs: dict[str, ModelSpec] = {}
        self._names: dict[str, tuple[ModelSpec, str]] = {}
        for spec in specs:
            if spec.id in self._specs:
                raise CatalogError(f"model {spec.id!r} is listed twice")
            self._specs[spec.id] = spec
        for spec in specs:
            self._add_name(spec.id, spec, spec.upstream_model)
            for alias in spec.aliases:
                self._add_name(alias, spec, spec.upstream_model)
            prefix = spec.id.split("/", 1)[0]
            for snapshot in spec.snapshots:
                self._add_name(f"{prefix}/{snapshot}", spec, snapshot)
        for spec in specs:
            # A replacement may be advice about a model this gateway does not serve yet; a
            # redirect must land on a model it does.
            if spec.redirect and spec.replacement not in self._specs:
                raise CatalogError(
                    f"{spec.id}: redirect target {spec.replacement!r} is not in the catalog"
                )
            for fallback in spec.fallbacks:
                if fallback == spec.id or fallback not in self._specs:
                    raise CatalogError(
                        f"{spec.id}: fallback {fallback!r} must be another model of the catalog"
                    )
                if not self._specs[fallback].generations:
                    raise CatalogError(
                        f"{spec.id}: fallback {fallback!r} only edits; it cannot serve a generation"
                    )
            replacement = self._specs.get(spec.replacement or "")
            edits_only = replacement is not None and not replacement.generations
            if spec.redirect and spec.generations and edits_only:
                raise CatalogError(
                    f"{spec.id}: redirect target {spec.replacement!r} only edits; it cannot "
                    "serve this model's generations"
                )

    def with_enabled(self, model_ids: Iterable[str]) -> Catalog:
        """This catalog with the named models enabled (ids not in it are returned by
        ``unknown_ids``, so the operator's typo can be reported rather than ignored)."""
        wanted = {_qualified(model_id) for model_id in model_ids}
        specs = [
            spec.model_copy(update={"enabled": True}) if spec.id in wanted else spec
            for spec in self._specs.values()
        ]
        return Catalog(specs)

    def unknown_ids(self, model_ids: Iterable[str]) -> list[str]:
        return [model_id for model_id in model_ids if _qualified(model_id) not in self._specs]

    def _add_name(self, name: str, spec: ModelSpec, upstream: str) -> None:
        if name in self._names and self._names[name][0].id != spec.id:
            raise CatalogError(f"model name {name!r} is claimed by two models")
        self._names[name] = (spec, upstream)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, model_id: str) -> ModelSpec | None:
        found = self._names.get(_qualified(model_id))
        return found[0] if found else None

    def resolve(self, requested: str, today: dt.date) -> Resolution:
        """The model that serves ``requested`` today, or the error the caller should see."""
        found = self._names.get(_qualified(requested))
        if found is None:
            raise ModelNotFound(
                f"The model `{requested}` does not exist. GET /v1/models lists the models this "
                "gateway serves.",
                param="model",
            )
        spec, upstream = found
        if not spec.enabled:
            why = f" {spec.lifecycle_note}" if spec.lifecycle_note else ""
            raise ModelUnavailable(
                f"The model `{spec.id}` is in this gateway's catalog but not enabled in this "
                f"deployment.{why} An operator enables it with "
                f"IMAGEGW_ENABLED_MODELS={spec.id}.",
                param="model",
                code="model_not_enabled",
            )
        if not spec.is_retired(today):
            return Resolution(requested, spec, upstream)
        replacement = self._specs.get(spec.replacement) if spec.replacement else None
        if spec.redirect and replacement is not None and not replacement.is_retired(today):
            return Resolution(
                requested, replacement, replacement.upstream_model, redirected_from=spec
            )
        advice = f" Use `{spec.replacement}` instead." if spec.replacement else ""
        raise ModelRetired(
            f"The model `{spec.id}` was shut down by its provider on {spec.shutdown_date}.{advice}",
            param="model",
        )


def _qualified(model_id: str) -> str:
    return model_id if "/" in model_id else f"{DEFAULT_PROVIDER_PREFIX}/{model_id}"


def parse_catalog(document: dict[str, Any]) -> Catalog:
    profiles: dict[str, dict[str, Any]] = document.get("profiles", {})
    prices: dict[str, dict[str, Any]] = document.get("prices", {})
    specs = []
    for raw in document.get("models", []):
        entry = dict(raw)
        profile_name = entry.pop("profile", None)
        if profile_name is not None and profile_name not in profiles:
            raise CatalogError(f"{entry.get('id')}: unknown profile {profile_name!r}")
        profile = profiles.get(profile_name or "", {})
        if "price" in profile:
            raise CatalogError(
                f"profile {profile_name!r}: a price is named per model, not in a profile"
            )
        merged = {**profile, **entry}
        # A model names its price (``price = "NAME"``, a [prices.NAME] table): never inherited
        # from a profile, so a new model of a known kind has no price until one is written.
        price_name = entry.get("price")
        merged.pop("price", None)
        if price_name is not None:
            if not isinstance(price_name, str) or price_name not in prices:
                raise CatalogError(f"{entry.get('id')}: unknown price {price_name!r}")
            merged["price"] = prices[price_name]
        try:
            specs.append(ModelSpec.model_validate(merged))
        except ValidationError as exc:
            raise CatalogError(f"invalid catalog entry {entry.get('id')!r}: {exc}") from exc
    return Catalog(specs)


def load_catalog(path: Path | None = None) -> Catalog:
    """The operator's catalog file if named, else the one packaged with the gateway."""
    # The packaged file sits next to this module (a directory on Lambda and in a venv);
    # importlib.resources would cost its own imports at the first request for the same path.
    text = (path or PACKAGED_CATALOG).read_text(encoding="utf-8")
    document = _parsed_copy(text) if path is None else None
    return parse_catalog(document if document is not None else parse_toml(text))


def parse_toml(text: str) -> dict[str, Any]:
    import tomllib  # only without a current parsed copy: an operator's file, a fresh edit

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog file is not valid TOML: {exc}") from exc


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parsed_copy(text: str) -> dict[str, Any] | None:
    """The document of PARSED_CATALOG if it was parsed from exactly ``text``, else None."""
    try:
        copy = json.loads(PARSED_CATALOG.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(copy, dict) or copy.get("sha256") != digest(text):
        return None
    document = copy.get("document")
    return document if isinstance(document, dict) else None


def write_parsed_copy() -> None:
    """Rewrite PARSED_CATALOG from models.toml (``make catalog``), after checking the catalog."""
    text = PACKAGED_CATALOG.read_text(encoding="utf-8")
    document = parse_toml(text)
    parse_catalog(document)
    copy = {"sha256": digest(text), "document": document}
    PARSED_CATALOG.write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n", "utf-8")
