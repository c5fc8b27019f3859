"""AWS API calls over the gateway's own HTTP client: the endpoint and the SigV4 signature.

A botocore client reads its answers itself: the whole body of an error (however large it is),
parsed with ``json.loads`` (however deeply it nests), and a streaming body through urllib3, on a
thread. The gateway reads upstream answers with one capped, bounded reader
(``fastpath.http_pool``); an AWS API it calls for image bytes (Bedrock's ``InvokeModel``) is
therefore sent over the shared httpx client, signed here with botocore's own SigV4 signer and
the process's credentials, found the standard way (environment, shared files, container or
instance role; the function's role on Lambda). botocore is imported on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from typing import Any

from imagegw.errors import ProviderNotConfigured, UpstreamUnreachable

_NO_CREDENTIALS = (
    "The gateway has no AWS credentials to call {service} with (the function's role on Lambda; "
    "AWS_PROFILE or AWS_ACCESS_KEY_ID locally)."
)


def endpoint_url(
    service_env_name: str, default: str, environ: Mapping[str, str] = os.environ
) -> str:
    """Where to send calls to an AWS service: ``default``, unless the environment says otherwise.

    The overrides botocore honours from the environment: ``AWS_ENDPOINT_URL_<SERVICE>`` (e.g.
    ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), then ``AWS_ENDPOINT_URL``, both ignored when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true (VPC endpoints, tests).
    """
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return default
    for name in (f"AWS_ENDPOINT_URL_{service_env_name}", "AWS_ENDPOINT_URL"):
        value = environ.get(name, "").strip()
        if value:
            return value.rstrip("/")
    return default


class SigV4Signer:
    """Signs requests to one AWS service in one Region with the process's credentials.

    ``credentials`` (botocore's) replaces the standard chain; without it the chain is searched
    on first use, in a worker thread (it may ask a container or instance endpoint), and kept:
    botocore refreshes temporary credentials itself before they expire.
    """

    def __init__(
        self, service: str, region: str, *, credentials: Any = None, service_name: str = ""
    ) -> None:
        self.service = service
        self.region = region
        self._credentials = credentials
        self._lock = threading.Lock()
        self._name = service_name or service

    async def headers(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """``headers`` plus the signature's (``Authorization``, ``X-Amz-Date``, and
        ``X-Amz-Security-Token`` for temporary credentials), for exactly this request."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import RefreshableCredentials

        credentials = self._credentials
        if credentials is None:
            credentials = await asyncio.to_thread(self._find_credentials)
        if isinstance(credentials, RefreshableCredentials):
            # May refresh them (a call to the credentials' source): not on the event loop.
            frozen = await asyncio.to_thread(self._frozen, credentials)
        else:
            frozen = self._frozen(credentials)
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(frozen, self.service, self.region).add_auth(request)
        return {name: value for name, value in request.headers.items()}

    def _find_credentials(self) -> Any:
        import botocore.exceptions as boto
        import botocore.session

        with self._lock:
            if self._credentials is not None:
                return self._credentials
            try:
                found = botocore.session.get_session().get_credentials()
            except (boto.NoCredentialsError, boto.PartialCredentialsError) as exc:
                raise ProviderNotConfigured(_NO_CREDENTIALS.format(service=self._name)) from exc
            except boto.BotoCoreError as exc:
                # A credentials source that did not answer (a container or instance endpoint):
                # nothing was sent, so a retry is safe.
                raise UpstreamUnreachable(
                    f"The gateway could not get its AWS credentials to call {self._name}; the "
                    "request was not sent."
                ) from exc
            if found is None:
                raise ProviderNotConfigured(_NO_CREDENTIALS.format(service=self._name))
            self._credentials = found
            return found

    def _frozen(self, credentials: Any) -> Any:
        import botocore.exceptions as boto

        try:
            return credentials.get_frozen_credentials()
        except boto.BotoCoreError as exc:
            raise UpstreamUnreachable(
                f"The gateway could not refresh its AWS credentials to call {self._name}; the "
                "request was not sent."
            ) from exc
