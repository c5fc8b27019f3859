"""A fake Stability AI REST API (v2beta) on 127.0.0.1: ``POST /v2beta/stable-image/generate/*``
and the inpainting service ``POST /v2beta/stable-image/edit/inpaint``.

What it checks, as Stability would (shared/reference/providers-2.md §3):

- ``Authorization: Bearer <key>`` (else 401 ``unauthorized``);
- ``accept: application/json`` (the gateway asks for base64 JSON, never raw bytes);
- a ``multipart/form-data`` body, parsed here with the standard library's MIME parser
  (independently of the gateway's encoder): only the endpoint's fields, each a form-data part,
  values from Stability's lists; the sd3 endpoint needs ``model`` (else 400 with ``errors``);
- inpaint: an ``image`` file and a ``mask`` file, the mask a PNG of the image's size (the
  files' bytes are kept in ``files``, in the order of ``accepted``, for pixel-exact checks).

Replies: ``Generated`` (a real image of the SD3 ladder's size for the ratio asked, or of the
input's size for inpaint, in the requested format, ``finish_reason: SUCCESS``),
``ContentFiltered`` (a 200 with ``CONTENT_FILTERED`` and a blurred image), ``StabilityError``
(``{"id", "name", "errors"}`` at a status), plus the wire-level ``Raw``, ``Truncated``,
``Delay`` and ``Hangup`` of ``scripted_http``.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from PIL import Image

from support.fake_bedrock import LADDER
from support.fake_openai import RecordedRequest, encode_image
from support.scripted_http import Delay, Hangup, Raw, Rendered, ScriptedServer, Truncated

API_KEY = "sk-stability-test"
_COMMON = {"prompt", "negative_prompt", "aspect_ratio", "seed", "output_format"}
FIELDS = {
    "ultra": _COMMON | {"image", "strength"},
    "core": _COMMON | {"style_preset"},
    "sd3": _COMMON | {"model", "mode", "image", "strength", "cfg_scale"},
    # /v2beta/stable-image/edit/inpaint (no aspect ratio: the output keeps the input's size).
    "inpaint": (_COMMON - {"aspect_ratio"}) | {"image", "mask", "grow_mask", "style_preset"},
}
_PATHS = re.compile(r"/v2beta/stable-image/(?:generate/(ultra|core|sd3)|edit/(inpaint))")
SD3_MODELS = {"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3-large", "sd3-medium"}


@dataclass(frozen=True)
class Generated:
    seed: int = 987654


@dataclass(frozen=True)
class ContentFiltered:
    """A 200 whose image the filter blurred."""


@dataclass(frozen=True)
class StabilityError:
    status: int
    name: str
    errors: list[str] = field(default_factory=lambda: ["error"])
    headers: dict[str, str] = field(default_factory=dict)


def moderated() -> StabilityError:
    return StabilityError(
        403,
        "content_moderation",
        [
            "Your request was flagged by our content moderation system, as a result your request "
            "was denied and you were not charged."
        ],
    )


def out_of_credits() -> StabilityError:
    return StabilityError(
        402, "payment_required", ["You lack sufficient credits to make this request."]
    )


Reply = Generated | ContentFiltered | StabilityError | Raw | Truncated | Delay | Hangup


class FakeStability(ScriptedServer):
    name = "stability"

    def __init__(self, *, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.default = Generated()
        self.accepted: list[tuple[str, dict[str, str]]] = []  # (endpoint, form fields)
        self.files: list[dict[str, bytes]] = []  # the file parts of each accepted request

    def reset(self, default: Any = None) -> None:
        super().reset(Generated() if default is None else default)
        self.accepted.clear()
        self.files.clear()

    def handle(self, recorded: RecordedRequest) -> Any:
        if recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return StabilityError(401, "unauthorized", ["authorization: invalid or missing key"])
        match = _PATHS.fullmatch(recorded.path)
        if match is None:
            return StabilityError(404, "not_found", [f"{recorded.path} not found"])
        endpoint = match.group(1) or match.group(2)
        if recorded.headers.get("accept") != "application/json":
            return _bad("accept: this test double only answers application/json")
        fields = _form(recorded)
        if isinstance(fields, StabilityError):
            return fields
        problem = _check(endpoint, fields)
        files = _files(recorded)
        if problem is None and endpoint == "inpaint":
            problem = _check_inpaint(files)
        if problem is not None:
            return _bad(problem)
        self.accepted.append((endpoint, fields))
        self.files.append(files)
        return self.next_reply()

    def render(self, reply: Any, recorded: RecordedRequest) -> Rendered:
        headers = {"Content-Type": "application/json"}
        if isinstance(reply, StabilityError):
            body = {"id": "0123456789abcdef", "name": reply.name, "errors": reply.errors}
            return reply.status, {**headers, **reply.headers}, json.dumps(body).encode()
        fields = _form(recorded)
        assert isinstance(fields, dict)
        output_format = fields.get("output_format", "png")
        image_file = _files(recorded).get("image")
        if "mask" in fields and image_file is not None:
            size = "x".join(str(side) for side in _dimensions(image_file))
        else:
            size = LADDER[fields.get("aspect_ratio", "1:1")]
        image = base64.b64encode(encode_image(size, output_format, 3)).decode("ascii")
        if isinstance(reply, ContentFiltered):
            answer = {"image": image, "finish_reason": "CONTENT_FILTERED", "seed": 1}
        elif isinstance(reply, Generated):
            seed = int(fields.get("seed", "0")) or reply.seed
            answer = {"image": image, "finish_reason": "SUCCESS", "seed": seed}
        else:
            raise TypeError(f"cannot render {reply!r}")
        return 200, headers, json.dumps(answer).encode()


def _bad(message: str) -> StabilityError:
    return StabilityError(400, "bad_request", [message])


def _form(recorded: RecordedRequest) -> dict[str, str] | StabilityError:
    content_type = recorded.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data; boundary="):
        return _bad("content-type: must be multipart/form-data")
    document = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + recorded.body
    message = BytesParser(policy=HTTP).parsebytes(document)
    if not message.is_multipart() or message.defects:
        return _bad("body: not a valid multipart/form-data body")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        if part.get_content_disposition() != "form-data":
            return _bad("body: every part must be form-data")
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes) or name in fields:
            return _bad("body: every part needs one unique name")
        if part.get_filename() is not None:
            # A file (the input image of image-to-image): checked here, kept out of the text.
            if name not in ("image", "mask") or not payload.startswith(
                (b"\x89PNG", b"\xff\xd8\xff", b"RIFF")
            ):
                return _bad(f"{name}: expected an image file (png, jpeg, webp)")
            fields[name] = f"<file of {len(payload)} bytes>"
            continue
        fields[name] = payload.decode("utf-8")
    return fields


def _files(recorded: RecordedRequest) -> dict[str, bytes]:
    """The file parts of a multipart body, by field name (parsed again, independently)."""
    content_type = recorded.headers.get("content-type", "")
    document = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + recorded.body
    message = BytesParser(policy=HTTP).parsebytes(document)
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.get_filename() is not None and isinstance(name, str):
            assert isinstance(payload, bytes)
            files[name] = payload
    return files


def _dimensions(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _check_inpaint(files: dict[str, bytes]) -> str | None:
    if "image" not in files:
        return "image: required"
    if "mask" not in files:
        return "mask: required (this test double does not read the image's alpha)"
    if not files["mask"].startswith(b"\x89PNG"):
        return "mask: expected a png"
    width, height = _dimensions(files["image"])
    if min(width, height) < 64:
        return "image: every side must be at least 64 pixels"
    if _dimensions(files["mask"]) != (width, height):
        return "mask: must have the dimensions of the image"
    return None


def _check(endpoint: str, fields: dict[str, str]) -> str | None:
    unknown = set(fields) - FIELDS[endpoint]
    if unknown:
        return f"{sorted(unknown)[0]}: not a field of the {endpoint} endpoint"
    if not 1 <= len(fields.get("prompt", "")) <= 10000:
        return "prompt: cannot be blank, at most 10000 characters"
    if len(fields.get("negative_prompt", "")) > 10000:
        return "negative_prompt: at most 10000 characters"
    if endpoint == "inpaint":
        grow = fields.get("grow_mask", "5")
        if not grow.isdigit() or int(grow) > 100:
            return "grow_mask: must be an integer from 0 to 100"
    elif "image" in fields:
        if endpoint == "sd3" and fields.get("mode") != "image-to-image":
            return "mode: image-to-image is required with an image"
        if "aspect_ratio" in fields:
            return "aspect_ratio: only used in text-to-image mode"
        try:
            strength = float(fields["strength"])
        except (KeyError, ValueError):
            return "strength: required with an image, a number from 0 to 1"
        if not 0 <= strength <= 1:
            return "strength: must be from 0 to 1"
    elif ("mode" in fields and fields["mode"] != "text-to-image") or "strength" in fields:
        return "image: required in image-to-image mode"
    if fields.get("aspect_ratio", "1:1") not in LADDER:
        return "aspect_ratio: must be one of 16:9, 1:1, 21:9, 2:3, 3:2, 4:5, 5:4, 9:16, 9:21"
    if fields.get("output_format", "png") not in ("png", "jpeg", "webp"):
        return "output_format: must be one of jpeg, png, webp"
    seed = fields.get("seed", "0")
    if not seed.isdigit() or int(seed) > 4294967294:
        return "seed: must be an integer from 0 to 4294967294"
    if endpoint == "sd3" and fields.get("model", "sd3.5-large") not in SD3_MODELS:
        return f"model: unknown model {fields.get('model')}"
    if fields.get("model") == "sd3.5-large-turbo" and "negative_prompt" in fields:
        return "negative_prompt: not supported by sd3.5-large-turbo"
    return None
