"""A fake Google on 127.0.0.1: OAuth token endpoint, Vertex AI and the Gemini API.

Like ``fake_openai`` it runs the stdlib ``ThreadingHTTPServer`` in a daemon thread, records every
request as it arrived and answers from scripts (one queue per endpoint kind, then a default).

    key = ServiceAccountKey.generate()
    with FakeGoogle(key) as google:
        info = key.info(token_uri=google.token_uri)   # the service-account JSON
        ...  # vertex_base_url=google.origin, gemini_base_url=google.origin

What it checks, as Google would:
- ``POST /token``: a JWT-bearer grant whose RS256 assertion verifies against the public half of
  the test's key, with Google's claims (iss, aud, scope, a one-hour lifetime around "now"). It
  issues opaque tokens that expire after ``expires_in`` seconds of the fake's clock.
- Vertex ``…/projects/P/locations/L/publishers/google/models/M:predict|:generateContent``: a
  Bearer token it issued and that has not expired (else 401), the expected project (else 403).
- Gemini API ``/v1beta/models/M:generateContent``: the ``x-goog-api-key`` header (a wrong key is
  Google's 400 INVALID_ARGUMENT with reason API_KEY_INVALID).
- Bodies: only fields Google knows, values from Google's lists, ``candidateCount`` > 1 refused.
Images are real PNG/JPEG files of the size Google documents for the ratio and tier asked.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.fake_openai import RecordedRequest, encode_image

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

# What Google documents, written out here independently of the gateway's own tables.
IMAGEN_SIZES = {
    ("1:1", "1K"): "1024x1024",
    ("3:4", "1K"): "896x1280",
    ("4:3", "1K"): "1280x896",
    ("9:16", "1K"): "768x1408",
    ("16:9", "1K"): "1408x768",
    ("1:1", "2K"): "2048x2048",
    ("3:4", "2K"): "1792x2560",
    ("4:3", "2K"): "2560x1792",
    ("9:16", "2K"): "1536x2816",
    ("16:9", "2K"): "2816x1536",
}
IMAGEN_MODELS = {
    "imagen-4.0-generate-001": True,  # takes sampleImageSize
    "imagen-4.0-ultra-generate-001": True,
    "imagen-4.0-fast-generate-001": False,
    "imagen-3.0-generate-002": False,
}
GEMINI_25_SIZES = {
    "1:1": "1024x1024",
    "2:3": "832x1248",
    "3:2": "1248x832",
    "3:4": "864x1184",
    "4:3": "1184x864",
    "4:5": "896x1152",
    "5:4": "1152x896",
    "9:16": "768x1344",
    "16:9": "1344x768",
    "21:9": "1536x672",
}
_G3_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_G3 = {
    "1K": "1024x1024 848x1264 1264x848 896x1200 1200x896 928x1152 1152x928 768x1376 1376x768 "
    "1584x672",
    "2K": "2048x2048 1696x2528 2528x1696 1792x2400 2400x1792 1856x2304 2304x1856 1536x2752 "
    "2752x1536 3168x1344",
    "4K": "4096x4096 3392x5056 5056x3392 3584x4800 4800x3584 3712x4608 4608x3712 3072x5504 "
    "5504x3072 6336x2688",
}
GEMINI_3_SIZES = {
    (ratio, tier): size
    for tier, row in _G3.items()
    for ratio, size in zip(_G3_RATIOS, row.split(), strict=True)
}
GEMINI_MODELS = {
    "gemini-2.5-flash-image": False,  # takes imageSize
    "gemini-3-pro-image": True,
    "gemini-3-pro-image-preview": True,
    "gemini-3.1-flash-image": True,
    "gemini-3.1-flash-image-preview": True,
}
_PREDICT_PARAMETERS = {
    "sampleCount",
    "aspectRatio",
    "negativePrompt",
    "seed",
    "addWatermark",
    "enhancePrompt",
    "personGeneration",
    "safetySetting",
    "includeRaiReason",
    "includeSafetyAttributes",
    "language",
    "outputOptions",
    "sampleImageSize",
    "storageUri",
    "guidanceScale",
}
_GENERATION_CONFIG = {
    "responseModalities",
    "imageConfig",
    "candidateCount",
    "temperature",
    "topP",
    "topK",
    "seed",
    "maxOutputTokens",
    "thinkingConfig",
}


# ------------------------------------------------------------------------------ the test's key


@dataclass(frozen=True)
class ServiceAccountKey:
    private_pem: str
    public_key: rsa.RSAPublicKey
    key_id: str = "0123456789abcdef0123456789abcdef01234567"
    client_email: str = "imagegw@imagegw-test.iam.gserviceaccount.com"
    project_id: str = "imagegw-test"

    @classmethod
    def generate(cls, **fields: Any) -> ServiceAccountKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return cls(private_pem=pem, public_key=private.public_key(), **fields)

    def info(self, *, token_uri: str) -> dict[str, str]:
        """The service-account JSON Google issues, with ``token_uri`` pointing at the fake."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": self.private_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        }


# ------------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Token:
    expires_in: int = 3599


@dataclass(frozen=True)
class Predictions:
    """An Imagen answer. ``filtered`` samples come back as raiFilteredReason entries."""

    filtered: int = 0
    enhanced_prompt: str | None = None  # sent back as each prediction's "prompt"
    omit_when_empty: bool = True  # all filtered: Google then sends no "predictions" at all


@dataclass(frozen=True)
class Content:
    """A Gemini answer for one call."""

    image: bool = True
    text: str | None = None  # a text part next to the image
    thought: bool = False  # a "thought" image and text before the real parts
    finish_reason: str = "STOP"
    block_reason: str | None = None  # promptFeedback.blockReason (no candidates then)
    size: str | None = None  # the size actually produced (Google may ignore imageSize)


@dataclass(frozen=True)
class GoogleError:
    status: int
    canonical: str
    message: str = "error"
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Raw:
    body: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Reply


@dataclass(frozen=True)
class Hangup:
    """Read the request, then close the connection without answering."""


Reply = Token | Predictions | Content | GoogleError | Raw | Delay | Hangup


def rate_limited(
    retry_delay: str | None = "7s", headers: dict[str, str] | None = None
) -> GoogleError:
    details = []
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return GoogleError(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
        "SECRET-UPSTREAM-DETAIL",
        details=details,
        headers=headers or {},
    )


def imagen_prompt_blocked() -> GoogleError:
    return GoogleError(
        400,
        "INVALID_ARGUMENT",
        "Image generation failed with the following error: The prompt could not be submitted. "
        "Your current safety filter threshold prohibited one or more words in this prompt. If "
        "you think this was an error, send feedback. Support codes: 61493863",
    )


def permission_denied() -> GoogleError:
    return GoogleError(
        403,
        "PERMISSION_DENIED",
        "Permission 'aiplatform.endpoints.predict' denied on resource SECRET-UPSTREAM-DETAIL",
    )


def model_gone(model: str = "imagen-4.0-generate-001") -> GoogleError:
    return GoogleError(
        404,
        "NOT_FOUND",
        f"Publisher model 'projects/imagegw-test/locations/us-central1/publishers/google/models/"
        f"{model}' was not found or your project does not have access to it.",
    )


def server_error() -> GoogleError:
    return GoogleError(500, "INTERNAL", "Internal error encountered. SECRET-UPSTREAM-DETAIL")


# -------------------------------------------------------------------------------------- server


class _Refusal(Exception):
    def __init__(self, reply: GoogleError) -> None:
        self.reply = reply


class FakeGoogle:
    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        api_key: str = "gemini-test-key",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.api_key = api_key
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self.token_requests: list[RecordedRequest] = []
        self.issued: dict[str, float] = {}  # token -> expiry (fake clock)
        self.token_default: Reply = Token()
        self.predict_default: Reply = Predictions()
        self.content_default: Reply = Content()
        self.handler_errors: list[BaseException] = []
        # Model calls being answered at once, and the most seen: bounded concurrency shows here.
        self.in_flight = 0
        self.max_in_flight = 0
        self._queues: dict[str, deque[Reply]] = {
            "token": deque(),
            "predict": deque(),
            "content": deque(),
        }
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- script

    def enqueue(self, kind: str, *replies: Reply) -> None:
        with self._lock:
            self._queues[kind].extend(replies)

    def _next(self, kind: str) -> Reply:
        default = {
            "token": self.token_default,
            "predict": self.predict_default,
            "content": self.content_default,
        }[kind]
        with self._lock:
            queue = self._queues[kind]
            return queue.popleft() if queue else default

    def reset(self) -> None:
        """Forget recorded requests and scripted replies (issued tokens stay valid)."""
        with self._lock:
            self.requests.clear()
            self.token_requests.clear()
            for queue in self._queues.values():
                queue.clear()
            self.max_in_flight = 0

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded model calls of one method ("predict" or "generateContent")."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(f":{method}")]

    # -- lifecycle

    @property
    def origin(self) -> str:
        assert self._server is not None, "the fake is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_uri(self) -> str:
        return self.origin + "/token"

    def start(self) -> FakeGoogle:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-google",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the endpoints

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path == "/token":
            return self._token(headers, body)
        document = _json(body)
        vertex = re.fullmatch(
            r"/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):(\w+)",
            path,
        )
        if vertex is not None:
            project, _location, model, method = vertex.groups()
            self._check_bearer(headers)
            if project != self.key.project_id:
                raise _Refusal(permission_denied())
            return self._model_call(model, method, document)
        gemini = re.fullmatch(r"/v1beta/models/([^/:]+):generateContent", path)
        if gemini is not None:
            if headers.get("x-goog-api-key") != self.api_key:
                raise _Refusal(
                    GoogleError(
                        400,
                        "INVALID_ARGUMENT",
                        "API key not valid. Please pass a valid API key.",
                        details=[
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                            }
                        ],
                    )
                )
            return self._model_call(gemini.group(1), "generateContent", document)
        return GoogleError(404, "NOT_FOUND", f"The requested URL {path} was not found.")

    def _token(self, headers: dict[str, str], body: bytes) -> Reply:
        if headers.get("content-type") != "application/x-www-form-urlencoded":
            return _invalid_grant("the token request must be form-encoded")
        form = urllib.parse.parse_qs(body.decode("ascii"))
        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return _invalid_grant("unsupported grant")
        problem = self._jwt_problem(form["assertion"][0])
        if problem is not None:
            return _invalid_grant(problem)
        return self._next("token")

    def _jwt_problem(self, assertion: str) -> str | None:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(claims_b64))
            signature = _b64url(signature_b64)
        except ValueError:
            return "malformed assertion"
        if header.get("alg") != "RS256" or header.get("kid") != self.key.key_id:
            return "wrong algorithm or key id"
        try:
            self.key.public_key.verify(
                signature,
                f"{header_b64}.{claims_b64}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:  # cryptography's InvalidSignature
            return "Invalid JWT Signature."
        now = self.clock()
        if claims.get("iss") != self.key.client_email:
            return "wrong issuer"
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return "wrong audience"
        if claims.get("scope") != CLOUD_PLATFORM:
            return "wrong scope"
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat != 3600:
            return "the assertion must live one hour"
        if not iat - 300 <= now <= exp:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        return None

    def _check_bearer(self, headers: dict[str, str]) -> None:
        authorization = headers.get("authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            expiry = self.issued.get(token)
        if expiry is None or self.clock() >= expiry:
            raise _Refusal(
                GoogleError(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. SECRET-UPSTREAM-DETAIL",
                )
            )

    def _model_call(self, model: str, method: str, document: Any) -> Reply:
        if method == "predict" and model in IMAGEN_MODELS:
            _check_predict(document, takes_tier=IMAGEN_MODELS[model])
            return self._next("predict")
        if method == "generateContent" and model in GEMINI_MODELS:
            _check_content(document, takes_tier=GEMINI_MODELS[model])
            return self._next("content")
        return model_gone(model)

    def issue(self, reply: Token) -> dict[str, Any]:
        token = f"ya29.fake-{next(self._ids)}"
        with self._lock:
            self.issued[token] = self.clock() + reply.expires_in
        return {"access_token": token, "expires_in": reply.expires_in, "token_type": "Bearer"}

    def wait(self, seconds: float) -> bool:
        return self._stopping.wait(seconds)


def _invalid_grant(description: str) -> Raw:
    body = {"error": "invalid_grant", "error_description": description}
    return Raw(json.dumps(body).encode(), status=400)


def _invalid(message: str) -> _Refusal:
    return _Refusal(GoogleError(400, "INVALID_ARGUMENT", message))


def _check_predict(document: Any, *, takes_tier: bool) -> None:
    if not isinstance(document, dict) or set(document) != {"instances", "parameters"}:
        raise _invalid("Invalid JSON payload received.")
    instances, parameters = document["instances"], document["parameters"]
    if not (
        isinstance(instances, list)
        and len(instances) == 1
        and set(instances[0]) == {"prompt"}
        and isinstance(instances[0]["prompt"], str)
    ):
        raise _invalid("instances must hold one prompt")
    unknown = set(parameters) - _PREDICT_PARAMETERS
    if unknown:
        raise _invalid(f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}")
    count = parameters.get("sampleCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 4:
        raise _invalid("sampleCount must be between 1 and 4")
    if parameters.get("aspectRatio", "1:1") not in {"1:1", "3:4", "4:3", "9:16", "16:9"}:
        raise _invalid("Unsupported aspect ratio")
    if "sampleImageSize" in parameters and (
        not takes_tier or parameters["sampleImageSize"] not in {"1K", "2K"}
    ):
        raise _invalid("sampleImageSize is not supported")
    if parameters.get("personGeneration", "allow_adult") not in {
        "dont_allow",
        "allow_adult",
        "allow_all",
    }:
        raise _invalid("Invalid personGeneration")
    options = parameters.get("outputOptions", {})
    if options.get("mimeType", "image/png") not in {"image/png", "image/jpeg"}:
        raise _invalid("Unsupported mimeType")


def _check_content(document: Any, *, takes_tier: bool) -> None:
    if not isinstance(document, dict) or not set(document) <= {
        "contents",
        "generationConfig",
        "safetySettings",
        "systemInstruction",
    }:
        raise _invalid("Invalid JSON payload received.")
    contents = document.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _invalid("contents is not specified")
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise _invalid("contents.parts must not be empty")
        for part in parts:
            _check_part(part)
    config = document.get("generationConfig", {})
    unknown = set(config) - _GENERATION_CONFIG
    if unknown:
        raise _invalid(f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}")
    if config.get("candidateCount", 1) != 1:
        raise _invalid("Multiple candidates is not enabled for this model.")
    image_config = config.get("imageConfig", {})
    if not set(image_config) <= {"aspectRatio", "imageSize"}:
        raise _invalid("Unknown name in imageConfig")  # Gemini API: no Vertex-only fields here
    if image_config.get("aspectRatio", "1:1") not in GEMINI_25_SIZES:
        raise _invalid("Unsupported aspect ratio")
    if "imageSize" in image_config and (
        not takes_tier or image_config["imageSize"] not in {"1K", "2K", "4K"}
    ):
        raise _invalid("imageSize is not supported for this model")


def _check_part(part: Any) -> None:
    """A part is text or inline data (an image of a type Gemini reads, as valid base64)."""
    if not isinstance(part, dict) or len(part) != 1:
        raise _invalid("A part has exactly one of text or inlineData.")
    if "text" in part:
        if not isinstance(part["text"], str):
            raise _invalid("Invalid value at 'contents.parts.text'")
        return
    inline = part.get("inlineData")
    if not isinstance(inline, dict) or set(inline) != {"mimeType", "data"}:
        raise _invalid("Invalid JSON payload received. Unknown name in part")
    if inline["mimeType"] not in ("image/png", "image/jpeg", "image/webp"):
        raise _invalid("Unsupported MIME type")
    try:
        base64.b64decode(inline["data"], validate=True)
    except ValueError:
        raise _invalid("Invalid value at 'contents.parts.inline_data.data'") from None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------- answers


def _render(
    fake: FakeGoogle, reply: Reply, path: str, document: Any
) -> tuple[int, dict[str, str], bytes]:
    if isinstance(reply, Raw):
        return reply.status, {"Content-Type": reply.content_type}, reply.body
    if isinstance(reply, GoogleError):
        envelope = {
            "error": {
                "code": reply.status,
                "message": reply.message,
                "status": reply.canonical,
                **({"details": reply.details} if reply.details else {}),
            }
        }
        return reply.status, {"Content-Type": "application/json", **reply.headers}, _dump(envelope)
    if isinstance(reply, Token):
        return 200, {"Content-Type": "application/json"}, _dump(fake.issue(reply))
    if isinstance(reply, Predictions):
        return 200, {"Content-Type": "application/json"}, _dump(_predictions(reply, document))
    if isinstance(reply, Content):
        model = re.search(r"models/([^/:]+):", path)
        assert model is not None
        return (
            200,
            {"Content-Type": "application/json"},
            _dump(_content(reply, document, model.group(1))),
        )
    raise TypeError(f"cannot render {reply!r}")


def _predictions(reply: Predictions, document: dict[str, Any]) -> dict[str, Any]:
    parameters = document["parameters"]
    count = parameters.get("sampleCount", 1)
    size = IMAGEN_SIZES[
        (parameters.get("aspectRatio", "1:1"), parameters.get("sampleImageSize", "1K"))
    ]
    mime = parameters.get("outputOptions", {}).get("mimeType", "image/png")
    image_format = "jpeg" if mime == "image/jpeg" else "png"
    predictions: list[dict[str, Any]] = []
    for index in range(count - reply.filtered):
        prediction = {
            "bytesBase64Encoded": base64.b64encode(encode_image(size, image_format, index)).decode(
                "ascii"
            ),
            "mimeType": mime,
        }
        if reply.enhanced_prompt is not None:
            prediction["prompt"] = reply.enhanced_prompt
        predictions.append(prediction)
    for _ in range(reply.filtered):
        predictions.append(
            {
                "raiFilteredReason": "Your current safety filter threshold filtered out one or "
                "more generated images. Support codes: 56562880"
            }
        )
    if not predictions or (reply.omit_when_empty and count == reply.filtered):
        return {}
    return {"predictions": predictions}


def _content(reply: Content, document: dict[str, Any], model: str) -> dict[str, Any]:
    usage = {"promptTokenCount": 7, "candidatesTokenCount": 1290, "totalTokenCount": 1297}
    if reply.block_reason is not None:
        return {"promptFeedback": {"blockReason": reply.block_reason}, "usageMetadata": usage}
    image_config = document.get("generationConfig", {}).get("imageConfig", {})
    ratio = image_config.get("aspectRatio", "1:1")
    if GEMINI_MODELS[model]:
        size = GEMINI_3_SIZES[(ratio, image_config.get("imageSize", "1K"))]
    else:
        size = GEMINI_25_SIZES[ratio]
    size = reply.size or size
    parts: list[dict[str, Any]] = []
    if reply.thought:
        parts.append({"text": "Sketching a composition first.", "thought": True})
        parts.append(
            {
                "inlineData": {
                    "mimeType": "image/png",
                    "data": base64.b64encode(encode_image("64x64", "png", 4)).decode("ascii"),
                },
                "thought": True,
            }
        )
    if reply.text is not None:
        parts.append({"text": reply.text})
    if reply.image:
        data = base64.b64encode(encode_image(size, "png", 1)).decode("ascii")
        parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
    candidate: dict[str, Any] = {"finishReason": reply.finish_reason, "index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}


def _dump(document: Any) -> bytes:
    return json.dumps(document).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeGoogle) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.fake.handler_errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    _in_flight = False  # counted in the fake's in_flight (one request per handler)

    protocol_version = "HTTP/1.1"
    server_version = "fake-google/1.0"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the recorded requests are the log."""

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=headers,
            raw_headers=list(self.headers.items()),
            body=body,
            json=_json(body),
        )
        with fake._lock:
            fake.requests.append(recorded)
            if self.path == "/token":
                fake.token_requests.append(recorded)
        self.close_connection = True
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        self._in_flight = True
        try:
            try:
                reply = fake.handle(self.path, headers, body)
            except _Refusal as refusal:
                reply = refusal.reply
            self._answer(reply, recorded.json)
        finally:
            self._leave()

    def _leave(self) -> None:
        """No longer in flight: called before the answer's first byte is written, so a client
        that starts its next call on receiving it never sees this one still counted."""
        if self._in_flight:
            self._in_flight = False
            with self.server.fake._lock:
                self.server.fake.in_flight -= 1

    def _answer(self, reply: Reply, document: Any) -> None:
        fake = self.server.fake
        if isinstance(reply, Delay):
            if fake.wait(reply.seconds):
                return
            self._answer(reply.then, document)
            return
        if isinstance(reply, Hangup):
            return
        status, headers, body = _render(fake, reply, self.path, document)
        self._leave()
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            return
