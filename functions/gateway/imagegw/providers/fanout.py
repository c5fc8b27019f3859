"""``n`` images from an upstream that makes one per call: ``n`` calls, bounded, under one deadline.

Each image that arrives is reported as progress (``images_done``), for a job's watchers.

Each call runs when one of ``max_parallel`` places is free and gets the time left of the
request's budget. At the deadline the calls still running are abandoned (counted as failed, told
as a timeout). Images that arrived are delivered even when other calls failed (they were paid
for), and the caller is told how many are missing and why: withheld by a filter
(``images_filtered``) or failed (``images_failed``). With no image at all the request fails: as a
content-policy violation naming the filter when every missing image was filtered, else with the
first failure that must not be repeated (else the first: see ``collect``). Never a 200 with fewer
images than asked and nothing said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegw.errors import ContentPolicyViolation, GatewayError, UpstreamTimeout
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.providers.dimensions import image_format, size
from imagegw.providers.progress import report_progress

if TYPE_CHECKING:
    from imagegw.providers.aspect_ratios import RatioChoice


@dataclass(frozen=True)
class Slot:
    """One call's answer: an image, or the reason a filter withheld it. Failures are raised."""

    image: GeneratedImage | None
    filter_reason: str | None = None
    seed: int | None = None


@dataclass
class Collected:
    images: list[GeneratedImage] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)
    filter_reasons: list[str] = field(default_factory=list)
    failures: list[GatewayError] = field(default_factory=list)


# Stability's seeds (Bedrock's and its own API): 1 to SEED_MAX fix the noise, 0 lets the model
# pick one per call.
SEED_MAX = 4_294_967_294


def variation_seed(seed: int | None, index: int) -> int | None:
    """The seed of the ``index``-th call of a fan-out: ``seed + index``, so that ``n`` images
    asked with one seed are ``n`` reproducible variations, not ``n`` paid copies of one image.

    Wraps within 1..``SEED_MAX``, never onto 0 (the model's own pick); None and 0 stay as they
    are (each call draws its own). The seeds used come back as ``seeds``, in ``data``'s order.
    """
    if not seed or index == 0:
        return seed
    return (seed - 1 + index) % SEED_MAX + 1


async def fan_out(
    n: int,
    timeout_seconds: float,
    max_parallel: int,
    call: Callable[[int, float], Awaitable[Slot]],
) -> Sequence[asyncio.Future[Slot]]:
    """Runs ``call(index, seconds_left)`` for each index below ``n``; every returned future is
    done or cancelled, in the order of the indexes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    gate = asyncio.Semaphore(max_parallel)
    done = 0

    async def one(index: int) -> Slot:
        nonlocal done
        async with gate:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout(
                    "The request's deadline passed before this image's call was sent."
                )
            slot = await call(index, remaining)
        if slot.image is not None:
            # One call, one image: the fan-out's own count, for a job's progress.
            done += 1
            report_progress(images_done=done)
        return slot

    calls = [asyncio.ensure_future(one(index)) for index in range(n)]
    try:
        _, late = await asyncio.wait(calls, timeout=timeout_seconds)
    finally:
        for pending in calls:
            pending.cancel()  # no-op for finished calls; stops the rest if we are cancelled
    if late:
        await asyncio.wait(late)
    return calls


def collect(
    calls: Sequence[asyncio.Future[Slot]],
    *,
    n: int,
    too_slow: Callable[[], GatewayError],
    filtered_message: str,
) -> Collected:
    """The images in call order and what happened to the others; raises when none arrived."""
    collected = Collected()
    for call in calls:
        if call.cancelled():  # still running at the deadline
            collected.failures.append(too_slow())
            continue
        error = call.exception()
        if isinstance(error, ContentPolicyViolation):
            collected.filter_reasons.append(error.message)
        elif isinstance(error, GatewayError):
            collected.failures.append(error)
        elif error is not None:
            raise error  # a bug, not an upstream failure: let it be seen
        else:
            slot = call.result()
            if slot.image is None:
                collected.filter_reasons.append(slot.filter_reason or "filtered")
            else:
                collected.images.append(slot.image)
                collected.seeds.append(slot.seed)
    if collected.images:
        return collected
    if collected.filter_reasons and not collected.failures:
        reasons = ", ".join(sorted(set(collected.filter_reasons)))
        count = len(collected.filter_reasons)
        raise ContentPolicyViolation(
            f"{filtered_message} {count} of {n} image{'s were' if count > 1 else ' was'} "
            f"withheld ({reasons}) and none was generated.",
            code="content_policy_violation",
        )
    # A failure that must not be repeated wins: raising a retryable one (a 429) would let the
    # retry table send the whole batch again, including calls that may already be billed.
    final = [failure for failure in collected.failures if not failure.should_retry]
    raise (final or collected.failures)[0]


async def one_call_per_image(
    request: ImageRequest,
    max_parallel: int,
    call: Callable[[int, float], Awaitable[Slot]],
    *,
    choice: RatioChoice | None,
    too_slow: Callable[[], GatewayError],
    filtered_message: str,
) -> ImageResult:
    """The request's ``n`` images from ``n`` calls (``fan_out``, then ``collect``): the size is
    the first image's own (else ``choice``'s nominal one), and the result says the aspect ratio
    chosen, the seeds the upstream used and how many images were filtered or failed."""
    calls = await fan_out(request.n, request.timeout_seconds, max_parallel, call)
    collected = collect(calls, n=request.n, too_slow=too_slow, filtered_message=filtered_message)
    images = collected.images
    found = size(images[0].b64())
    extra: dict[str, Any] = {"aspect_ratio": choice.aspect_ratio} if choice else {}
    if any(seed is not None for seed in collected.seeds):
        extra["seeds"] = collected.seeds
    return ImageResult(
        images=images,
        size=found or (choice.nominal if choice else None),
        output_format=image_format(images[0].b64()),
        filtered=len(collected.filter_reasons),
        failed=len(collected.failures),
        extra=extra,
    )
