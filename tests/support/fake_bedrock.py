"""A fake Amazon Bedrock runtime on 127.0.0.1: ``POST /model/{modelId}/invoke`` as boto3 sends it.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (or ``endpoint_url``) and the
dummy credentials below. What it checks, as Bedrock would:

- the SigV4 ``Authorization`` header (service ``bedrock``, the fake's Region, a known access
  key, a signature over the body as received: ``support.sigv4.header_refusal``), else 403
  ``InvalidSignatureException`` / ``UnrecognizedClientException``;
- ``Content-Type`` and ``Accept`` ``application/json``;
- the model: one of the three Stability generators, or the inpainting Image Service through
  its ``us.`` inference profile (its base id is refused on demand, as Bedrock does; anything
  else is 404 ``ResourceNotFoundException``);
- the body: Stability's flat envelope with only its fields, values from its lists
  (else 400 ``ValidationException`` with Bedrock's "Malformed input request" text); inpainting:
  ``image`` and ``mask`` in base64, the mask a PNG of the image's size.

Replies: ``Generated`` (a real PNG/JPEG of the SD3 ladder's size for the ratio asked, in
``{"seeds", "finish_reasons": [null], "images"}``), ``Filtered`` (HTTP 200, a filter's
``finish_reasons`` and no image), ``InferenceError``, ``AwsError`` (any exception by its code),
plus the wire-level ``Raw``, ``Truncated``, ``Delay`` and ``Hangup`` of ``scripted_http``.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from PIL import Image

from support import sigv4
from support.fake_openai import RecordedRequest, encode_image
from support.scripted_http import Delay, Hangup, Raw, Rendered, ScriptedServer, Truncated

ACCESS_KEY = "AKIAIMAGEGWTEST00001"
SECRET_KEY = "imagegw-test-secret-key-0000000000000000"
REGION = "us-west-2"
MODELS = (
    "stability.stable-image-ultra-v1:1",
    "stability.stable-image-core-v1:1",
    "stability.sd3-5-large-v1:0",
)
# Stability's inpainting Image Service: only through the US cross-Region inference profile.
INPAINT_PROFILE = "us.stability.stable-image-inpaint-v1:0"
PROFILE_ONLY = {"stability.stable-image-inpaint-v1:0": INPAINT_PROFILE}
# Written out from the reference (providers-2.md §1.3), independently of the gateway's table.
LADDER = {
    "1:1": "1024x1024",
    "16:9": "1344x768",
    "21:9": "1536x640",
    "3:2": "1216x832",
    "2:3": "832x1216",
    "4:5": "896x1088",
    "5:4": "1088x896",
    "9:16": "768x1344",
    "9:21": "640x1536",
}
_FIELDS = {
    "prompt",
    "negative_prompt",
    "aspect_ratio",
    "seed",
    "output_format",
    "mode",
    "image",
    "strength",
}


@dataclass(frozen=True)
class Generated:
    seed: int = 1234567
    size: str | None = None  # the size produced; None: the ladder's for the ratio


@dataclass(frozen=True)
class Filtered:
    reason: str = "Filter reason: prompt"


@dataclass(frozen=True)
class InferenceError:
    pass


@dataclass(frozen=True)
class AwsError:
    status: int
    code: str
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)


def throttled() -> AwsError:
    return AwsError(
        429, "ThrottlingException", "Too many requests, please wait before trying again."
    )


def access_denied() -> AwsError:
    return AwsError(
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID. SECRET-UPSTREAM-DETAIL",
    )


def validation(message: str) -> AwsError:
    return AwsError(400, "ValidationException", message)


Reply = Generated | Filtered | InferenceError | AwsError | Raw | Truncated | Delay | Hangup


class _Refusal(Exception):
    def __init__(self, reply: AwsError) -> None:
        self.reply = reply


class FakeBedrock(ScriptedServer):
    name = "bedrock"

    def __init__(self, *, region: str = REGION) -> None:
        super().__init__()
        self.region = region
        self.default = Generated()
        self.refusals: list[str] = []  # why requests were refused (signature, body ...)
        self.accepted: list[RecordedRequest] = []  # invocations that passed every check

    def reset(self, default: Any = None) -> None:
        super().reset(Generated() if default is None else default)
        self.refusals.clear()
        self.accepted.clear()

    def calls(self, model: str | None = None) -> list[RecordedRequest]:
        """Model invocations that passed the checks, in arrival order."""
        return [
            request
            for request in list(self.accepted)
            if model is None or request.path == _path(model)
        ]

    def handle(self, recorded: RecordedRequest) -> Any:
        try:
            self._check(recorded)
        except _Refusal as refusal:
            self.refusals.append(f"{refusal.reply.code}: {refusal.reply.message}")
            return refusal.reply
        return self.next_reply()

    def _check(self, recorded: RecordedRequest) -> None:
        problem = sigv4.header_refusal(
            recorded.method,
            recorded.path,
            recorded.headers,
            recorded.body,
            {ACCESS_KEY: SECRET_KEY},
            region=self.region,
            service="bedrock",
            now=time.time(),
        )
        if problem is not None:
            code, _, message = problem.partition(": ")
            raise _Refusal(AwsError(403, code, message))
        match = re.fullmatch(r"/model/([^/]+)/invoke", recorded.path)
        if match is None:
            raise _Refusal(AwsError(404, "UnknownOperationException", recorded.path))
        model = unquote(match.group(1))
        if model in PROFILE_ONLY:
            raise _Refusal(
                validation(
                    f"Invocation of model ID {model} with on-demand throughput isn't supported. "
                    "Retry your request with the ID or ARN of an inference profile that contains "
                    "this model."
                )
            )
        if model not in (*MODELS, INPAINT_PROFILE):
            raise _Refusal(
                AwsError(
                    404,
                    "ResourceNotFoundException",
                    "Could not resolve the foundation model from the provided model identifier.",
                )
            )
        for name in ("content-type", "accept"):
            if recorded.headers.get(name) != "application/json":
                raise _Refusal(validation(f"{name} must be application/json"))
        try:
            document = json.loads(recorded.body)
        except ValueError:
            raise _Refusal(
                validation("Malformed input request, please reformat your input and try again.")
            ) from None
        if model == INPAINT_PROFILE:
            _check_inpaint_body(document)
        else:
            _check_body(document)
        self.accepted.append(recorded)

    def render(self, reply: Any, recorded: RecordedRequest) -> Rendered:
        return _render(reply, recorded.json or {})


def _path(model: str) -> str:
    return "/model/" + model.replace(":", "%3A") + "/invoke"


def _check_body(document: Any) -> None:
    def malformed(detail: str) -> _Refusal:
        return _Refusal(
            validation(
                f"Malformed input request: {detail}, please reformat your input and try again."
            )
        )

    if not isinstance(document, dict):
        raise malformed("expected an object")
    unknown = set(document) - _FIELDS
    if unknown:
        raise malformed(f"extraneous key [{sorted(unknown)[0]}] is not permitted")
    prompt = document.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 10000:
        raise malformed("#/prompt: expected a string of 1 to 10000 characters")
    negative = document.get("negative_prompt", "")
    if not isinstance(negative, str) or len(negative) > 10000:
        raise malformed("#/negative_prompt: expected a string of at most 10000 characters")
    if document.get("mode", "text-to-image") == "image-to-image":
        image = document.get("image")
        try:
            data = base64.b64decode(image, validate=True) if isinstance(image, str) else b""
        except ValueError:
            data = b""
        if not data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"RIFF")):
            raise malformed("#/image: expected a base64 encoded png, jpeg or webp image")
        strength = document.get("strength")
        if not isinstance(strength, int | float) or not 0 <= strength <= 1:
            raise malformed("#/strength: expected a number from 0 to 1")
        if "aspect_ratio" in document:
            raise malformed("#/aspect_ratio: not permitted in image-to-image mode")
    elif {"image", "strength"} & set(document):
        raise malformed("#/mode: image-to-image is required with an image")
    if document.get("aspect_ratio", "1:1") not in LADDER:
        raise malformed(f"#/aspect_ratio: {document.get('aspect_ratio')} is not a valid enum value")
    seed = document.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 4294967294:
        raise malformed("#/seed: expected an integer from 0 to 4294967294")
    if document.get("output_format", "png") not in ("png", "jpeg"):
        raise malformed(
            f"#/output_format: {document.get('output_format')} is not a valid enum value"
        )


_INPAINT_FIELDS = {
    "prompt",
    "negative_prompt",
    "seed",
    "output_format",
    "image",
    "mask",
    "grow_mask",
    "style_preset",
}


def _decoded(document: dict[str, Any], name: str) -> bytes:
    value = document.get(name)
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except ValueError:
        return b""


def _dimensions(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _check_inpaint_body(document: Any) -> None:
    def malformed(detail: str) -> _Refusal:
        return _Refusal(
            validation(
                f"Malformed input request: {detail}, please reformat your input and try again."
            )
        )

    if not isinstance(document, dict):
        raise malformed("expected an object")
    unknown = set(document) - _INPAINT_FIELDS
    if unknown:
        raise malformed(f"extraneous key [{sorted(unknown)[0]}] is not permitted")
    prompt = document.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 10000:
        raise malformed("#/prompt: expected a string of 1 to 10000 characters")
    image, mask = _decoded(document, "image"), _decoded(document, "mask")
    if not image.startswith((b"\x89PNG", b"\xff\xd8\xff", b"RIFF")):
        raise malformed("#/image: expected a base64 encoded png, jpeg or webp image")
    if not mask.startswith(b"\x89PNG"):
        raise malformed("#/mask: expected a base64 encoded png image")
    if _dimensions(mask) != _dimensions(image):
        raise malformed("#/mask: must have the dimensions of the image")
    grow = document.get("grow_mask", 5)
    if not isinstance(grow, int) or isinstance(grow, bool) or not 0 <= grow <= 100:
        raise malformed("#/grow_mask: expected an integer from 0 to 100")
    seed = document.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 4294967294:
        raise malformed("#/seed: expected an integer from 0 to 4294967294")
    if document.get("output_format", "png") not in ("png", "jpeg"):
        raise malformed(
            f"#/output_format: {document.get('output_format')} is not a valid enum value"
        )


def _render(reply: Any, document: Any) -> Rendered:
    if isinstance(reply, AwsError):
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": f"{reply.code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
            **reply.headers,
        }
        return reply.status, headers, json.dumps({"message": reply.message}).encode()
    if isinstance(reply, Filtered):
        # No seeds and no usable image (epam/ai-dial-adapter-bedrock #301).
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"images": [], "finish_reasons": [reply.reason]}).encode(),
        )
    if isinstance(reply, InferenceError):
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(
                {"seeds": [7], "images": [], "finish_reasons": ["Inference error"]}
            ).encode(),
        )
    if isinstance(reply, Generated):
        ratio = document.get("aspect_ratio", "1:1")
        output_format = document.get("output_format", "png")
        size = reply.size or LADDER[ratio]
        if "mask" in document and reply.size is None:  # inpainting keeps the input's size
            size = "x".join(str(side) for side in _dimensions(_decoded(document, "image")))
        image = encode_image(size, output_format, 2)
        answer = {
            "seeds": [document.get("seed") or reply.seed],
            "finish_reasons": [None],
            "images": [base64.b64encode(image).decode("ascii")],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
    raise TypeError(f"cannot render {reply!r}")


def environment(fake: FakeBedrock) -> dict[str, str]:
    """The variables that point boto3 at ``fake`` with the dummy credentials, nothing else."""
    return {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.origin,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": "/nonexistent/imagegw-test-aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/imagegw-test-aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# Variables that would point boto3 elsewhere or give it other credentials.
CLEARED = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")
