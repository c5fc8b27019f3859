"""What an image costs: a model's price as catalog data, and the two sums made from it.

Each catalog model may carry a ``price`` (models.toml), with the source it was read from and the
date it was read (``as_of``). A model without one has no known price: its cost is ``None``,
never a guess. Three ways upstreams bill, all data:

- ``per_image``: rows of USD per image, by quality and size (``"*"`` matches any). DALL-E,
  Stability, Bedrock, and the output-only estimates OpenAI publishes for gpt-image.
- ``tokens``: USD per million tokens (gpt-image, Gemini). The upstream's ``usage`` is the bill;
  the rows of ``per_image`` only estimate it before the call.
- ``megapixels``: a first megapixel and each further one (FLUX.2), plus input megapixels.
- ``reported``: the upstream says what it charged (BFL's ``cost``); that figure is the cost.

Two sums:

``most_per_image``/``max_cost``: the most a request can cost, before the call: n times the
highest price the request's parameters allow (an ``auto`` or absent quality or size allows
every row). The spend hold (budgets) takes this much.

``cost_of``: what the delivered images cost, after the call: from the upstream's figures when it
gave them (``estimated`` False), else from the catalog rows for the settings the images came in
(``estimated`` True).

Money is ``Decimal`` (USD); counters hold whole micro-dollars (``to_micros``).
"""

# No ``from __future__ import annotations`` here: pydantic would compile every field's annotation
# from a string when the class is built, on every cold start (bench/RESULTS.md, round 6).

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ANY = "*"
CURRENCY = "USD"
MILLION = Decimal(1_000_000)
MICRO = Decimal("0.000001")
ZERO = Decimal(0)


class ImagePrice(BaseModel):
    """USD for one image of ``quality`` at any of ``sizes`` (``"*"``: any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd: Decimal = Field(ge=0)
    quality: str = ANY
    sizes: tuple[str, ...] = (ANY,)


class TokenRates(BaseModel):
    """USD per million tokens, as the upstream counts them in ``usage``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_input: Decimal = Field(ge=0)
    image_input: Decimal = Field(ge=0)
    image_output: Decimal = Field(ge=0)
    # Output tokens billed for each partial image of a streamed generation (OpenAI: 100).
    partial_image_tokens: int = Field(default=0, ge=0)
    # True when ``usage`` counts only the billed image tokens. Gemini's output count also holds
    # text tokens (cheaper), so a cost from it is an upper bound: reported as estimated.
    usage_exact: bool = True


class MegapixelRates(BaseModel):
    """USD for the first output megapixel, each further one, and each input megapixel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: Decimal = Field(ge=0)
    additional: Decimal = Field(ge=0)
    input: Decimal = Field(default=ZERO, ge=0)
    max_megapixels: int = Field(ge=1)


class Price(BaseModel):
    """A model's price, where it comes from and when it was read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    as_of: dt.date
    note: str = ""
    per_image: tuple[ImagePrice, ...] = ()
    tokens: TokenRates | None = None
    megapixels: MegapixelRates | None = None
    reported: bool = False
    # The upstream bills exactly these per-image rows (a fixed price per image, no tokens): a
    # cost from a row that names the image's quality and size is then not an estimate.
    billed_per_image: bool = False

    @model_validator(mode="after")
    def _complete(self) -> "Price":
        if not self.per_image and self.megapixels is None:
            # Tokens alone cannot say what an image will cost before it is made: a hold needs
            # the per-image rows too.
            raise ValueError("a price needs per_image rows or megapixels (the pre-call estimate)")
        return self

    def most_per_image(self, quality: str | None, size: str | None) -> Decimal:
        """The highest price one image can have with this quality and size (None, auto: any)."""
        quality, size = _given(quality), _given(size)
        if self.megapixels is not None:
            pixels = _pixels(size)
            if pixels is None:
                return self.megapixels_price(self.megapixels.max_megapixels)
            return self.megapixels_price(_megapixels_up(pixels))
        allowed = self.rows_for(quality, size)
        # A size or quality no row names (any WxH of gpt-image-2) may cost up to the dearest
        # row: the estimate errs on the side of holding too much.
        return max(allowed) if allowed else max(row.usd for row in self.per_image)

    def rows_for(self, quality: str | None, size: str | None) -> list[Decimal]:
        """The prices of the rows that allow this quality and size (None, auto: any)."""
        quality, size = _given(quality), _given(size)
        return [row.usd for row in self.per_image if _allows(row, quality, size)]

    def megapixels_price(self, megapixels: int, input_megapixels: int = 0) -> Decimal:
        assert self.megapixels is not None
        rates = self.megapixels
        output = rates.first + rates.additional * max(0, megapixels - 1)
        return output + rates.input * input_megapixels

    def published(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says about the price."""
        document = _plain(self.model_dump(exclude_defaults=True))
        assert isinstance(document, dict)
        document["currency"] = CURRENCY
        return document


@dataclass(frozen=True)
class Cost:
    """What a request cost, in USD; ``estimated`` when not from the upstream's own figures."""

    amount: Decimal
    estimated: bool

    def body(self) -> dict[str, Any]:
        return {
            "amount": float(_micro(self.amount)),
            "currency": CURRENCY,
            "estimated": self.estimated,
        }

    def header(self) -> str:
        return f"{_micro(self.amount):f}"

    @property
    def micros(self) -> int:
        return to_micros(self.amount)

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.amount + other.amount, self.estimated or other.estimated)


UNKNOWN_COST_HEADER = "unknown"


def cost_body(cost: Cost | None) -> dict[str, Any] | None:
    return cost.body() if cost is not None else None


def cost_header(cost: Cost | None) -> str:
    return cost.header() if cost is not None else UNKNOWN_COST_HEADER


def usd(amount: Decimal) -> str:
    """``$0.211``, ``$5.00``: cents always shown, fractions of a cent when there are any."""
    exact = _micro(amount)
    exponent = exact.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"${exact:.{places}f}"


def to_micros(amount: Decimal) -> int:
    """Whole micro-dollars, rounded up: a hold never rounds below what it covers."""
    return int(amount.scaleb(6).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


def max_cost(
    price: Price,
    *,
    n: int,
    quality: str | None,
    size: str | None,
    prompt_chars: int = 0,
    partial_images: int = 0,
    input_megapixels: int = 0,
) -> Decimal:
    """The most a request can cost: ``n`` images at the highest price its parameters allow.

    For token-billed models the prompt is counted as one token per character (a tokenizer never
    makes more tokens than characters for ordinary text) and each partial image a stream may
    send adds its output tokens. An edit's input images count where the price says what they
    cost (per input megapixel, for each image made); their token count is known only to the
    upstream, so token-billed edits are settled higher than held by those tokens.
    """
    amount = price.most_per_image(quality, size) * n
    if price.megapixels is not None:
        amount += price.megapixels.input * input_megapixels * n
    if price.tokens is not None:
        rates = price.tokens
        amount += rates.text_input * prompt_chars / MILLION
        amount += rates.image_output * rates.partial_image_tokens * partial_images / MILLION
    return amount


def cost_of(
    price: Price | None,
    *,
    delivered: int,
    quality: str | None,
    size: str | None,
    usage: Mapping[str, Any] | None = None,
    reported_usd: Decimal | None = None,
    partial_images: int = 0,
    input_images: int = 0,
) -> Cost | None:
    """What the delivered images cost, or None when the model has no known price."""
    if price is None:
        return None
    if price.reported and reported_usd is not None:
        return Cost(reported_usd, estimated=False)
    if price.tokens is not None and usage is not None:
        from_usage = _token_cost(price.tokens, usage, partial_images, input_images)
        if from_usage is not None:
            return from_usage
    if delivered <= 0:
        return Cost(ZERO, estimated=False)
    per_image = price.most_per_image(quality, size)
    # Exact only when the model bills per image and one price fits what was delivered.
    billed = price.billed_per_image and len(set(price.rows_for(quality, size))) == 1
    return Cost(per_image * delivered, estimated=not billed)


def _token_cost(
    rates: TokenRates, usage: Mapping[str, Any], partial_images: int, input_images: int
) -> Cost | None:
    output = _count(usage.get("output_tokens"))
    total_input = _count(usage.get("input_tokens"))
    if output is None or total_input is None:
        return None
    estimated = not rates.usage_exact
    details = usage.get("input_tokens_details")
    text = _count(details.get("text_tokens")) if isinstance(details, Mapping) else None
    images = _count(details.get("image_tokens")) if isinstance(details, Mapping) else None
    if text is None or images is None:
        # No split: a generation's input is its prompt; an edit's also holds its images, at
        # the dearer rate, which is what an upper bound charges.
        text, images = (0, total_input) if input_images else (total_input, 0)
        estimated = estimated or input_images > 0
    amount = (
        rates.text_input * text + rates.image_input * images + rates.image_output * output
    ) / MILLION
    if partial_images and rates.partial_image_tokens:
        # Whether the final usage already counts the partial images' tokens is unconfirmed
        # (providers-2.md §4): they are added, and the amount is marked estimated.
        amount += rates.image_output * rates.partial_image_tokens * partial_images / MILLION
        estimated = True
    return Cost(amount, estimated)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _given(value: str | None) -> str | None:
    return None if value in (None, "", "auto") else value


def _allows(row: ImagePrice, quality: str | None, size: str | None) -> bool:
    quality_ok = quality is None or row.quality in (ANY, quality)
    size_ok = size is None or ANY in row.sizes or size in row.sizes
    return quality_ok and size_ok


def _pixels(size: str | None) -> int | None:
    if size is None:
        return None
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return None
    return int(width) * int(height)


def _megapixels_up(pixels: int) -> int:
    return max(1, math.ceil(pixels / 1_000_000))


def _plain(value: Any) -> Any:
    """JSON-ready: amounts as numbers (not the strings pydantic makes of Decimal), dates ISO."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _micro(amount: Decimal) -> Decimal:
    return amount.quantize(MICRO, rounding=ROUND_HALF_UP)
