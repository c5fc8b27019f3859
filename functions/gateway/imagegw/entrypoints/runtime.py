"""Everything a process builds once and shares between requests, created lazily.

Nothing here does I/O when constructed: the catalog is read, the HTTP client opened and the
providers built on first use. Tests pass their own parts (a fake provider, a store in a temp
directory, a fixed clock) instead of patching modules.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagegw.aws.secrets_cache import CachedSecret, secretsmanager_fetch
from imagegw.catalog import Catalog, load_catalog
from imagegw.errors import StorageUnavailable
from imagegw.redaction import remember
from imagegw.settings import Settings
from imagegw.state.auth import (
    CombinedKeyStore,
    FileKeyStore,
    KeyStore,
    SecretKeyStore,
    StaticKeyStore,
)
from imagegw.storage import ImageStore
from imagegw.storage.local import LocalImageStore, default_directory

if TYPE_CHECKING:
    # Imported on first use: a process that has not generated yet (a cold start answering
    # GET /v1/models, a health check) loads neither httpx nor the generation path
    # (providers, credentials, idempotency, limits, retries).
    import httpx

    from imagegw.aws.credentials import CredentialSource
    from imagegw.generation.reliability import Reliability
    from imagegw.observability import Telemetry
    from imagegw.providers import ImageProvider
    from imagegw.state.jobs.queue import JobQueue
    from imagegw.state.jobs.store import JobStore
    from imagegw.state.realtime import RealtimeStore
    from imagegw.storage.presign import Presigner
    from imagegw.storage.uploads import UploadStore

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        key_store: KeyStore | None = None,
        image_store: ImageStore | None = None,
        upload_store: UploadStore | None = None,
        providers: dict[str, ImageProvider] | None = None,
        credentials: CredentialSource | None = None,
        job_store: JobStore | None = None,
        realtime_store: RealtimeStore | None = None,
        job_queue: JobQueue | None = None,
        reliability: Reliability | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._catalog = catalog
        self._key_store = key_store
        self._image_store = image_store
        self._upload_store = upload_store
        # Providers handed in (tests) are used as they are; built ones are rebuilt when their
        # config changes, which is how a rotated provider key takes effect.
        self._fixed_providers: dict[str, ImageProvider] = dict(providers or {})
        self._built: dict[str, tuple[dict[str, Any], ImageProvider]] = {}
        self._credentials = credentials
        self._http: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None
        self._job_store = job_store
        self._realtime_store = realtime_store
        self._job_queue = job_queue
        self._job_queue_built = job_queue is not None
        self._telemetry: Telemetry | None = None
        self._reliability = reliability

    @property
    def reliability(self) -> Reliability:
        """Idempotency, per-key limits and retries (in memory until first used; no I/O here)."""
        if self._reliability is None:
            from imagegw.generation.reliability import Reliability

            self._reliability = Reliability(self.settings, clock=self.clock)
        return self._reliability

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            catalog = load_catalog(self.settings.catalog_file)
            enabled = self.settings.enabled_model_ids()
            if enabled:
                unknown = catalog.unknown_ids(enabled)
                if unknown:
                    logger.warning(
                        "IMAGEGW_ENABLED_MODELS names models the catalog does not have",
                        extra={"models": unknown},
                    )
                catalog = catalog.with_enabled(enabled)
            self._catalog = catalog
        return self._catalog

    @property
    def key_store(self) -> KeyStore:
        if self._key_store is None:
            self._key_store = build_key_store(self.settings)
        return self._key_store

    @property
    def image_store(self) -> ImageStore:
        if self._image_store is None:
            self._image_store = build_image_store(self.settings, self.clock)
        return self._image_store

    @property
    def upload_store(self) -> UploadStore:
        """Where edit inputs are uploaded beside the API (storage/uploads.py)."""
        if self._upload_store is None:
            self._upload_store = build_upload_store(self.settings, self.clock)
        return self._upload_store

    @property
    def job_store(self) -> JobStore:
        if self._job_store is None:
            from imagegw.entrypoints.job_build import build_job_store

            self._job_store = build_job_store(self.settings)
            if self.settings.websocket_endpoint and self.settings.realtime_table:
                from imagegw.entrypoints.progress_push import PushingJobStore

                # Progress recorded here reaches the job's WebSocket subscribers on AWS.
                self._job_store = PushingJobStore(self._job_store, self)
        return self._job_store

    @property
    def realtime_store(self) -> RealtimeStore:
        """Progress WebSocket tokens, connections and subscriptions (state/realtime.py)."""
        if self._realtime_store is None:
            self._realtime_store = build_realtime_store(self.settings)
        return self._realtime_store

    @property
    def job_queue(self) -> JobQueue | None:
        """Where submitted jobs go; None when async jobs are not available here."""
        if not self._job_queue_built:
            from imagegw.entrypoints.job_build import build_job_queue

            self._job_queue = build_job_queue(self.settings, self._run_job_here)
            self._job_queue_built = True
        return self._job_queue

    async def _run_job_here(self, job_id: str) -> object:
        from imagegw.generation.job_runner import process_job

        # One attempt: there is no queue to come back from.
        return await process_job(self, job_id, max_receive_count=1)

    @property
    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            from imagegw.observability import Telemetry

            self._telemetry = Telemetry(self.settings)
        return self._telemetry

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC).date()

    def http(self) -> httpx.AsyncClient:
        """The shared upstream client of the running event loop.

        Under Lambda, Mangum reuses one loop for the life of the process; a client is bound to
        the loop it was created in, so a new loop (tests, a restarted server) gets a new one.
        """
        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop:
            from imagegw.fastpath.http_pool import upstream_client

            self._http = (loop, upstream_client())
        return self._http[1]

    @property
    def credentials(self) -> CredentialSource:
        if self._credentials is None:
            self._credentials = build_credentials(self.settings)
        return self._credentials

    async def provider(self, name: str) -> ImageProvider:
        fixed = self._fixed_providers.get(name)
        if fixed is not None:
            return fixed
        config = await self.credentials.config(name)
        built = self._built.get(name)
        # A plain comparison of a few keys: this runs on every request (serializing and hashing
        # the config, as before, cost more than the rest of the lookup).
        if built is not None and built[0] == config:
            return built[1]
        from imagegw.providers import build_provider

        provider = build_provider(name, config, self.settings, self.http())
        self._built[name] = (dict(config), provider)
        if built is not None:
            # In-flight requests may still hold the old provider; the shared HTTP client is
            # not its to close, so only its own resources go.
            await built[1].aclose()
        return provider

    async def aclose(self) -> None:
        if self._job_queue is not None:
            await self._job_queue.drain()
        providers = [*self._fixed_providers.values(), *(p for _, p in self._built.values())]
        for provider in providers:
            await provider.aclose()
        if self._http is not None:
            await self._http[1].aclose()
            self._http = None


def build_realtime_store(settings: Settings) -> RealtimeStore:
    from imagegw.state.realtime import DynamoDBRealtimeStore, MemoryRealtimeStore

    if settings.realtime_table is None:
        return MemoryRealtimeStore()
    from imagegw.state.dynamodb import dynamodb_client

    return DynamoDBRealtimeStore(settings.realtime_table, client=dynamodb_client)


def build_credentials(settings: Settings) -> CredentialSource:
    from imagegw.aws.credentials import EnvironmentCredentials, SecretCredentials

    if settings.provider_secret_id is None:
        return EnvironmentCredentials(settings)
    secret = CachedSecret(
        secretsmanager_fetch(settings.provider_secret_id),
        role="provider credentials secret (IMAGEGW_PROVIDER_SECRET_ID)",
        ttl_seconds=settings.secret_ttl_seconds,
        grace_seconds=settings.secret_grace_seconds,
    )
    return SecretCredentials(secret, settings)


def build_key_store(settings: Settings) -> KeyStore:
    stores: list[KeyStore] = []
    if settings.api_keys is not None:
        keys = [key.strip() for key in settings.api_keys.get_secret_value().split(",")]
        remember(*keys)  # never echoed back, whatever an upstream or a caller sends
        stores.append(StaticKeyStore([key for key in keys if key]))
    if settings.api_keys_file is not None:
        stores.append(FileKeyStore(settings.api_keys_file))
    if settings.client_keys_secret_id is not None:
        secret = CachedSecret(
            secretsmanager_fetch(settings.client_keys_secret_id),
            role="client keys secret (IMAGEGW_CLIENT_KEYS_SECRET_ID)",
            ttl_seconds=settings.secret_ttl_seconds,
            grace_seconds=settings.secret_grace_seconds,
        )
        stores.append(SecretKeyStore(secret))
    return CombinedKeyStore(stores)


def build_image_store(settings: Settings, clock: Callable[[], float]) -> ImageStore:
    if settings.storage == "s3":
        return build_s3_store(settings, clock)
    secret = settings.url_signing_secret
    if secret is not None:
        remember(secret.get_secret_value())
    return LocalImageStore(
        settings.local_storage_dir or default_directory(),
        signing_secret=secret.get_secret_value().encode() if secret else secrets.token_bytes(32),
        ttl_seconds=settings.url_ttl_seconds,
        clock=clock,
    )


def build_upload_store(settings: Settings, clock: Callable[[], float]) -> UploadStore:
    from imagegw.storage.uploads import LocalUploadStore, S3UploadStore

    if settings.storage == "s3":
        from imagegw.storage.s3 import s3_client

        if not settings.s3_bucket:
            raise StorageUnavailable(
                "Uploads go to S3 (IMAGEGW_STORAGE=s3) but IMAGEGW_S3_BUCKET is not set.",
                code="storage_not_configured",
            )
        return S3UploadStore(
            s3_client,
            _presigner(settings, clock),
            bucket=settings.s3_bucket,
            prefix=settings.s3_uploads_prefix,
            ttl_seconds=settings.upload_ttl_seconds,
            kms_key_id=settings.s3_kms_key_id,
        )
    secret = settings.url_signing_secret
    return LocalUploadStore(
        (settings.local_storage_dir or default_directory()) / "uploads",
        # Without a configured secret, forms die with the process (like local image links).
        signing_secret=secret.get_secret_value().encode() if secret else secrets.token_bytes(32),
        ttl_seconds=settings.upload_ttl_seconds,
        clock=clock,
    )


def _presigner(settings: Settings, clock: Callable[[], float]) -> Presigner:
    from imagegw.storage.presign import OwnCredentialsPresigner, RolePresigner, sts_client
    from imagegw.storage.s3 import s3_client

    if settings.s3_signer_role_arn:
        return RolePresigner(
            role_arn=settings.s3_signer_role_arn,
            ttl_seconds=settings.url_ttl_seconds,
            sts_client=sts_client,
            s3_client=lambda credentials: s3_client(credentials=credentials),
            clock=clock,
        )
    return OwnCredentialsPresigner(s3_client, ttl_seconds=settings.url_ttl_seconds, clock=clock)


def build_s3_store(settings: Settings, clock: Callable[[], float]) -> ImageStore:
    from imagegw.storage.s3 import S3ImageStore, s3_client

    if not settings.s3_bucket:
        raise StorageUnavailable(
            "URL delivery is set to S3 (IMAGEGW_STORAGE=s3) but IMAGEGW_S3_BUCKET is not set.",
            code="storage_not_configured",
        )
    presigner = _presigner(settings, clock)
    return S3ImageStore(
        s3_client,
        presigner,
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        kms_key_id=settings.s3_kms_key_id,
    )
