"""The edit use case: ``POST /v1/images/edits``, whatever encoding it arrived in.

An edit is a generation with input images, so it goes through the same steps and the same
code (validation, Idempotency-Key, limits, retries, delivery, the response body), with three
additions, cheapest first so that nothing is fetched or decoded for a request that fails anyway:

1. the model must edit, and take this many images, a mask, ``input_fidelity`` (catalog:
   ``max_input_images``, ``masks``, ``input_fidelities``; published in ``GET /v1/models``);
2. every input is read (``image_refs``: uploads, own links, ``data:`` URLs, guarded fetches)
   and inspected as untrusted (``input_images``), within per-file, per-request and pixel limits;
3. the mask must be a PNG with alpha, the size of the first image.

``stream: true`` streams an edit as a generation streams (``stream_edit``), with OpenAI's
``image_edit.*`` event names.

Edits never fall back to another model: a fallback would have to be re-checked for every edit
capability and the inputs re-sent, and an edit the caller did not choose is not the same edit.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from pydantic import ValidationError

from imagegw.catalog import ModelSpec
from imagegw.errors import GatewayError, InvalidValue, MissingParameter, UnsupportedParameter
from imagegw.generation.context import EditContext
from imagegw.generation.deadline import Deadline
from imagegw.generation.delivery_policy import DeliveryPolicy
from imagegw.generation.edit_request import (
    EditSubmission,
    ImageEditRequest,
    ImageSource,
    submission_from_json,
)
from imagegw.generation.image_refs import ImageReader
from imagegw.generation.input_images import (
    InputLimits,
    check_mask,
    check_size,
    check_total,
    inspect_image,
)
from imagegw.generation.service import (
    GenerationOutcome,
    PreparedGeneration,
    deliver_prepared,
)
from imagegw.generation.streaming import ImageStream, stream_prepared
from imagegw.generation.validation import validate
from imagegw.providers.inputs import InputImage
from imagegw.schemas import _first_problem
from imagegw.state.auth import Principal


def input_limits(runtime: EditContext) -> InputLimits:
    settings = runtime.settings
    return InputLimits(
        max_bytes=settings.edit_max_image_bytes,
        max_total_bytes=settings.edit_max_total_bytes,
        max_pixels=settings.edit_max_image_pixels,
    )


def image_reader(
    runtime: EditContext, principal: Principal, *, events: bool = False
) -> ImageReader:
    """How ``principal``'s inputs are read; ``events``: an event's references (image_refs)."""
    settings = runtime.settings
    return ImageReader(
        owner=principal.name,
        image_store=lambda: runtime.image_store,
        upload_store=lambda: runtime.upload_store,
        http=runtime.http,
        clock=runtime.clock,
        max_bytes=settings.edit_max_image_bytes,
        fetch_https=settings.edit_fetch_https_urls,
        fetch_timeout_seconds=settings.edit_fetch_timeout_seconds,
        events=events,
    )


def parse_edit_fields(fields: dict[str, Any]) -> ImageEditRequest:
    try:
        return ImageEditRequest.model_validate(fields)
    except ValidationError as exc:
        raise _first_problem(exc) from exc


def check_edit_capabilities(
    runtime: EditContext, submission: EditSubmission, body: ImageEditRequest, spec: ModelSpec
) -> None:
    """The model edits, and takes this many images, the mask and input_fidelity if given."""
    if not spec.edits:
        today = runtime.today()
        editors = [s.id for s in runtime.catalog if s.edits and not s.is_retired(today)]
        raise InvalidValue(
            f"The model `{spec.id}` does not edit images. Models that do: "
            f"{', '.join(editors) or '(none)'} (GET /v1/models: capabilities.edits).",
            param="model",
            code="model_does_not_edit",
        )
    count = len(submission.images)
    if count > spec.max_input_images:
        raise InvalidValue(
            f"The model `{spec.id}` takes at most {spec.max_input_images} input image"
            f"{'' if spec.max_input_images == 1 else 's'}; {count} were given.",
            param=submission.images[spec.max_input_images].param.split("[", 1)[0],
            code="too_many_images",
        )
    if submission.mask is not None and not spec.masks:
        raise UnsupportedParameter(
            f"The model `{spec.id}` does not take a mask: it edits by instruction. Describe "
            "the area to change in the prompt instead, and send the request without 'mask'.",
            param="mask",
        )
    if submission.mask is None and spec.mask_required:
        raise MissingParameter(
            f"The model `{spec.id}` repaints the area a mask marks and needs 'mask': a PNG the "
            "size of the image whose transparent pixels (alpha 0) are the area to change.",
            param="mask",
        )
    if body.input_fidelity is not None:
        if not spec.input_fidelities:
            raise UnsupportedParameter(
                f"The model `{spec.id}` does not accept 'input_fidelity'. Send the request "
                "without it.",
                param="input_fidelity",
            )
        if body.input_fidelity not in spec.input_fidelities:
            allowed = ", ".join(f"'{value}'" for value in spec.input_fidelities)
            raise InvalidValue(
                f"Invalid value for 'input_fidelity': '{body.input_fidelity}'. The model "
                f"`{spec.id}` supports: {allowed}.",
                param="input_fidelity",
            )


async def read_inputs(
    reader: ImageReader, submission: EditSubmission, limits: InputLimits
) -> tuple[tuple[InputImage, ...], InputImage | None]:
    """Every input image read and inspected, in order; the mask checked against the first."""
    sources: list[ImageSource] = list(submission.images)
    if submission.mask is not None:
        sources.append(submission.mask)
    sizes: list[int] = []
    inspected: list[InputImage] = []
    for source in sources:
        data = await reader.read(source)
        check_size(len(data), param=source.param, limits=limits)
        sizes.append(len(data))
        check_total(sizes, limits=limits)
        formats = ("png",) if source is submission.mask else ("png", "jpeg", "webp")
        inspected.append(
            await asyncio.to_thread(
                inspect_image, data, param=source.param, limits=limits, formats=formats
            )
        )
    mask = inspected.pop() if submission.mask is not None else None
    if mask is not None:
        check_mask(mask, inspected[0])
    return tuple(inspected), mask


async def prepare_edit(
    runtime: EditContext,
    principal: Principal,
    submission: EditSubmission,
    *,
    delivery: DeliveryPolicy,
    reader: ImageReader | None = None,
) -> PreparedGeneration:
    """Everything that can be checked (and read) before paying for an edit."""
    spec: ModelSpec | None = None
    try:
        body = parse_edit_fields(submission.fields)
        requested = body.model or runtime.settings.default_model
        if requested is None:
            raise MissingParameter(
                "Missing required parameter: 'model'. GET /v1/models lists the models this "
                "gateway serves (capabilities.edits: the ones that edit).",
                param="model",
            )
        resolution = runtime.catalog.resolve(requested, runtime.today())
        spec = resolution.spec
        principal.require_model(spec.id)
        check_edit_capabilities(runtime, submission, body, spec)
        validated = validate(
            body,
            resolution,
            timeout_seconds=runtime.settings.upstream_timeout_seconds,
            delivery=delivery,
        )
        images, mask = await read_inputs(
            reader or image_reader(runtime, principal), submission, input_limits(runtime)
        )
    except GatewayError as exc:
        runtime.telemetry.error(
            code=exc.code,
            provider=spec.provider if spec else None,
            model=spec.id if spec else None,
        )
        raise
    digests = tuple(image.sha256 for image in images)
    if mask is not None:
        digests += (f"mask:{mask.sha256}",)
    body = body.model_copy(update={"inputs": digests})
    request = dataclasses.replace(
        validated.image_request, images=images, mask=mask, input_fidelity=body.input_fidelity
    )
    validated = dataclasses.replace(validated, image_request=request)
    return PreparedGeneration(resolution, validated, body)


async def prepare_json_edit(
    runtime: EditContext,
    principal: Principal,
    raw: bytes,
    *,
    delivery: DeliveryPolicy,
) -> PreparedGeneration:
    """An edit in OpenAI's JSON form (how an edit job keeps its request), prepared."""
    return await prepare_edit(runtime, principal, submission_from_json(raw), delivery=delivery)


async def edit_images(
    runtime: EditContext,
    principal: Principal,
    submission: EditSubmission,
    *,
    base_url: str,
    delivery: DeliveryPolicy,
    deadline: Deadline | None = None,
    response_limit: int | None = None,
    idempotency_key: str | None = None,
) -> GenerationOutcome:
    """An edit, delivered like a generation (``service.generate_images``, without fallbacks)."""
    prepared = await prepare_edit(runtime, principal, submission, delivery=delivery)
    # Without fallbacks (see the module docstring).
    return await deliver_prepared(
        runtime,
        principal,
        prepared,
        base_url=base_url,
        deadline=deadline,
        response_limit=response_limit,
        idempotency_key=idempotency_key,
        fallbacks=False,
    )


async def stream_edit(
    runtime: EditContext,
    principal: Principal,
    submission: EditSubmission,
    *,
    base_url: str,
    delivery: DeliveryPolicy,
    deadline: Deadline | None = None,
    response_limit: int | None = None,
    idempotency_key: str | None = None,
) -> ImageStream:
    """An edit with ``stream: true``: OpenAI's ``image_edit.*`` event stream, made as a
    generation's is (``streaming.stream_prepared``: same guards, partial images, errors)."""
    prepared = await prepare_edit(runtime, principal, submission, delivery=delivery)
    return await stream_prepared(
        runtime,
        principal,
        prepared,
        base_url=base_url,
        deadline=deadline,
        response_limit=response_limit,
        idempotency_key=idempotency_key,
    )
