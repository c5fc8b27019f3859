"""AWS clients that share one parsed copy of the service models.

A fresh boto3 session parses a service's model (hundreds of KB of JSON) when it creates its first
client: about 100 ms. The URL signer makes an S3 client for every set of assumed-role
credentials, which with the default one-hour lifetime is once per link, so clients are made here
from a botocore session each (sessions are not thread-safe; credentials, Region and endpoint
overrides are read from the environment as usual) sharing one loader that keeps the parsed
models for the life of the process. botocore is imported on first use, not at startup.
"""

from __future__ import annotations

import threading
from typing import Any

_loader: Any = None
_lock = threading.Lock()


def client(service: str, **kwargs: Any) -> Any:
    """A botocore client for ``service`` (``create_client`` arguments: region_name, config...)."""
    import botocore.loaders
    import botocore.session

    global _loader
    with _lock:
        if _loader is None:
            _loader = botocore.loaders.create_loader()
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader)
    return session.create_client(service, **kwargs)
