"""Every knob of the gateway, read from the environment once per process.

Settings name secrets and places, never hold provider keys in code. Tests build their own
``Settings`` and hand it to ``create_app``; everything else calls ``get_settings()``.

Each field is read from ``IMAGEGW_<FIELD>`` (any case), or from the names its
``validation_alias`` lists, first one set (and not empty) wins; keyword arguments win over the
environment.
That is what pydantic-settings did here, without its import (argparse, python-dotenv, its
sources: about 20 ms of every cold start) for a reader this small. Values are the environment's
strings, validated by pydantic as before: same defaults, same constraints, same errors.
"""

# No ``from __future__ import annotations`` here: pydantic would compile every field's annotation
# from a string when the class is built, on every cold start (bench/RESULTS.md, round 6).

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator

ENV_PREFIX = "IMAGEGW_"
DAY_SECONDS = 86_400


class Settings(BaseModel):
    # validate_default as pydantic-settings had it: a default is checked like any value.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**environment_values(), **values})

    # Client keys. Comma-separated plain keys (hashed on load), or a JSON file of hashed keys.
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None

    # Model catalog: the packaged data file unless an operator points at their own.
    catalog_file: Path | None = None
    default_model: str | None = None
    # Catalog models that are off by default (``enabled = false``: an unconfirmed upstream
    # contract) and that this deployment serves anyway; comma-separated ids.
    enabled_models: str = ""

    # OpenAI and compatible upstreams. The unprefixed names are what every OpenAI tool reads.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEGW_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("IMAGEGW_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
    )
    openai_organization: str | None = Field(
        default=None,
        validation_alias=AliasChoices("IMAGEGW_OPENAI_ORGANIZATION", "OPENAI_ORG_ID"),
    )

    # Google (Vertex AI with a service account, or the Gemini API with an API key).
    google_service_account_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "IMAGEGW_GOOGLE_SERVICE_ACCOUNT_FILE", "GOOGLE_APPLICATION_CREDENTIALS"
        ),
    )
    google_project: str | None = Field(
        default=None,
        validation_alias=AliasChoices("IMAGEGW_GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT"),
    )
    google_location: str | None = Field(
        default=None,
        validation_alias=AliasChoices("IMAGEGW_GOOGLE_LOCATION", "GOOGLE_CLOUD_LOCATION"),
    )
    google_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEGW_GOOGLE_API_KEY", "GEMINI_API_KEY")
    )
    # Vertex AI hosts the Gemini image models on the global endpoint; Imagen used `location`.
    google_gemini_location: str | None = None
    # Endpoints: Google's unless set (a test double, a private endpoint or a proxy).
    google_vertex_base_url: str | None = None
    google_gemini_base_url: str | None = None

    # Stability models on Amazon Bedrock, through the function's own AWS credentials (no key).
    # The Region of the Bedrock endpoint, independent of the function's: the Stability image
    # generators are served in us-west-2 only. Unset or empty: the bedrock provider is off.
    # botocore's own settings (AWS_ENDPOINT_URL_BEDROCK_RUNTIME) move the endpoint.
    bedrock_region: str | None = None

    # The Stability AI REST API (v2beta).
    stability_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("IMAGEGW_STABILITY_API_KEY", "STABILITY_API_KEY"),
    )
    stability_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("IMAGEGW_STABILITY_BASE_URL", "STABILITY_BASE_URL"),
    )

    # Black Forest Labs (FLUX). The region picks BFL's global, EU or US endpoint; a base URL
    # replaces it (a proxy, a test double).
    bfl_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEGW_BFL_API_KEY", "BFL_API_KEY")
    )
    bfl_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEGW_BFL_BASE_URL", "BFL_BASE_URL")
    )
    bfl_region: Literal["global", "eu", "us"] | None = None
    # First wait before asking BFL about a task; later waits grow to 4x this.
    bfl_poll_seconds: float = Field(default=0.5, gt=0, le=10)

    # AWS Secrets Manager: names or ARNs of the secrets, never their values.
    provider_secret_id: str | None = None
    client_keys_secret_id: str | None = None
    secret_ttl_seconds: float = Field(default=300.0, ge=0)
    # How long the last good value keeps serving while Secrets Manager cannot be reached.
    secret_grace_seconds: float = Field(default=3600.0, ge=0)

    # Upstream calls. Image generations routinely take a minute or more.
    upstream_timeout_seconds: float = Field(default=300.0, gt=0)
    upstream_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # The largest upstream answer read, in bytes. Unset: derived per request from what it can
    # legitimately produce (the model's largest image x n, with headroom: providers/base.py
    # answer_limit). Beyond it the answer is cut off with a 502 and the connection dropped.
    upstream_max_answer_bytes: int | None = Field(default=None, ge=1024)

    # Delivery of response_format=url.
    storage: Literal["local", "s3"] = "local"
    local_storage_dir: Path | None = None
    s3_bucket: str | None = None
    s3_prefix: str = "images/"
    # The role presigned URLs are signed with (its expiry is known; the Lambda role's is not).
    s3_signer_role_arn: str | None = None
    s3_kms_key_id: str | None = None
    url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    url_signing_secret: SecretStr | None = None
    public_base_url: str | None = None

    # A buffered Lambda response above 6,291,556 bytes becomes a bare 502 from API Gateway.
    # Answers that would not fit switch to url delivery when allowed, else they are a 413.
    # Checked for requests that arrive through Lambda; `enforce_response_limit` checks always.
    max_response_bytes: int = Field(default=6_291_556, ge=1024)
    enforce_response_limit: bool = False
    oversize_to_url: bool = True

    # Reliability (retry.py, idempotency.py, limits.py). Upstream calls are retried only when
    # nothing can have been billed; attempts and waits stay within the request's budget.
    upstream_max_attempts: int = Field(default=3, ge=1, le=10)
    upstream_retry_base_seconds: float = Field(default=0.5, ge=0)
    upstream_retry_max_seconds: float = Field(default=8.0, ge=0)
    # Idempotency records and per-key counters: in this DynamoDB table when named (key `pk`,
    # TTL attribute `expires_at`), else in memory. Large answers go to IMAGEGW_S3_BUCKET.
    idempotency_table: str | None = None
    idempotency_window_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    idempotency_wait_seconds: float = Field(default=20.0, ge=0)
    idempotency_memory_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    idempotency_s3_prefix: str = "idempotency/"
    # The usage ledger (state/usage.py) lives in the same table: how long a day's entries stay.
    usage_retention_days: int = Field(default=400, ge=1, le=3650)

    # Request hygiene.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Under uvicorn (make dev, containers: entrypoints/serving.py), what API Gateway enforces
    # under Lambda: the request line and headers at most this many bytes (431 beyond), and all
    # of them within this many seconds of the connection or of the previous answer (408).
    max_header_bytes: int = Field(default=10_240, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0)

    # Edits (docs/edits.md). Input images are untrusted: limits per file, per request and in
    # pixels (checked from the header, before decoding). Through Lambda, API Gateway's own cap
    # (about 6 MB of body) comes first: larger inputs go through POST /v1/images/uploads.
    edit_max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    edit_max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    edit_max_total_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    edit_max_image_pixels: int = Field(default=36_000_000, ge=1)
    # Fetch image_urls from the public internet (HTTPS only, never private or loopback
    # addresses). Off: only uploads, data: URLs and the gateway's own links are read.
    edit_fetch_https_urls: bool = False
    edit_fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    # Upload forms (POST /v1/images/uploads) expire after this long.
    upload_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    s3_uploads_prefix: str = "uploads/"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Deadlines under Lambda. An upstream call gets what is left of the invocation (and of the
    # API Gateway integration timeout when the request came through one) minus this margin,
    # kept for storing images and sending the answer.
    response_margin_seconds: float = Field(default=2.0, ge=0)
    # REST APIs cut requests at 29 s (raisable by a quota request), HTTP APIs at 30 s.
    # Function URLs have no such limit: only the function's own timeout applies.
    api_gateway_timeout_seconds: float = Field(default=29.0, gt=0)

    # Async jobs (`Prefer: respond-async`). Without a table the jobs live in process memory;
    # without a queue they run as background tasks of the process (development only).
    jobs_table: str | None = None
    jobs_queue_url: str | None = None
    # How long job records are kept (DynamoDB TTL). A job must not outlive its images, so with
    # the bucket's retention (IMAGEGW_IMAGE_RETENTION_DAYS, the stack's ImageRetentionDays) it
    # defaults to exactly that and may not be longer; without either, one day.
    image_retention_days: int | None = Field(default=None, ge=1)
    jobs_retention_seconds: int | None = Field(default=None, ge=60)
    # The queue's maxReceiveCount: on that delivery a job that still fails is marked failed
    # and its message goes on to the dead-letter queue.
    jobs_max_receive_count: int = Field(default=3, ge=1)

    # The job-progress WebSocket (docs/streaming.md). Tokens, connections and subscriptions live in
    # this DynamoDB table when named (key `pk`, TTL `expires_at`), else in memory (`make dev`).
    realtime_table: str | None = None
    # The API Gateway WebSocket API: its public wss:// URL (returned with tokens) and the
    # Management API endpoint (https://{api}.execute-api.{region}.amazonaws.com/{stage}) that
    # the worker pushes progress through. Unset: the local WebSocket route of this process.
    websocket_url: str | None = None
    websocket_endpoint: str | None = None
    realtime_token_ttl_seconds: int = Field(default=60, ge=5, le=3600)
    # API Gateway closes WebSocket connections after 2 hours at most.
    realtime_connection_ttl_seconds: int = Field(default=7200, ge=60)

    # Observability. Prompts are personal data: they are logged only when this is switched on.
    log_prompts: bool = False
    # CloudWatch metrics as EMF lines on stdout; None means "when running in Lambda".
    metrics: bool | None = None
    metrics_namespace: str = "imagegw"
    # X-Ray through Powertools Tracer (the function also needs `Tracing: Active`). Off by
    # default: the X-Ray SDK adds about 0.3 s to a cold start.
    tracing: bool = False
    # Browser origins allowed to call the API (comma-separated); empty: no CORS headers at all.
    cors_origins: str = ""
    # The browser playground at /playground (static page; the key stays in the page). Off unless
    # switched on: `make dev` switches it on; on AWS it is a deliberate choice.
    playground: bool = False

    def enabled_model_ids(self) -> list[str]:
        return [name.strip() for name in self.enabled_models.split(",") if name.strip()]

    @model_validator(mode="after")
    def _jobs_do_not_outlive_their_images(self) -> "Settings":
        images = self.image_retention_days
        if images is not None and (self.jobs_retention_seconds or 0) > images * DAY_SECONDS:
            raise ValueError(
                f"IMAGEGW_JOBS_RETENTION_SECONDS ({self.jobs_retention_seconds}) is longer than "
                f"IMAGEGW_IMAGE_RETENTION_DAYS ({images}): jobs would outlive their images"
            )
        return self

    @property
    def job_retention_seconds(self) -> int:
        """How long a job record lives: the configured value, else as long as its images."""
        if self.jobs_retention_seconds is not None:
            return self.jobs_retention_seconds
        if self.image_retention_days is not None:
            return self.image_retention_days * DAY_SECONDS
        return DAY_SECONDS


def _environment_names() -> dict[str, tuple[str, ...]]:
    """Field name -> the variables that may set it, lower-cased, in order of preference."""
    names: dict[str, tuple[str, ...]] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = tuple(str(choice).lower() for choice in alias.choices)
        else:
            names[field_name] = (f"{ENV_PREFIX}{field_name}".lower(),)
    return names


_ENVIRONMENT_NAMES: dict[str, tuple[str, ...]] = {}


def environment_values() -> dict[str, str]:
    """The fields the environment sets, by field name, as the strings it holds."""
    if not _ENVIRONMENT_NAMES:
        _ENVIRONMENT_NAMES.update(_environment_names())
    environment = {name.lower(): value for name, value in os.environ.items()}
    values: dict[str, str] = {}
    for field_name, candidates in _ENVIRONMENT_NAMES.items():
        for candidate in candidates:
            # Empty is unset: CloudFormation can only empty a variable, never leave it out (the
            # template's IMAGEGW_API_KEYS, a blank PublicBaseUrl, `sam local --env-vars`).
            if environment.get(candidate, "") != "":
                values[field_name] = environment[candidate]
                break
    return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
