"""Who follows which job over the progress WebSocket, and the tokens that let them connect.

- **Tokens**: browsers cannot set headers on a WebSocket, and an API key must never sit in a URL
  (URLs end up in access logs). ``POST /v1/realtime/tokens`` (an HTTPS call with the key) issues
  a short-lived, single-use token for the query string instead. Only its SHA-256 is stored.
- **Connections**: a connection id and the key name it authenticated as (jobs are matched by it).
- **Subscriptions**: the connections following a job, so that whoever records the job's progress
  can push it to them (on AWS the worker, through the API Gateway Management API).

Locally everything is in memory (``MemoryRealtimeStore``). On AWS, one DynamoDB table
(``IMAGEGW_REALTIME_TABLE``: partition key ``pk``, TTL attribute ``expires_at``) holds:

- ``token#<sha256>``: ``client``, ``expires_at`` (redeemed by a conditional delete: once);
- ``conn#<connection id>``: ``client``, ``jobs`` (string set), ``expires_at``;
- ``job#<job id>``: ``connections`` (string set), ``expires_at``.

TTL cleans up what a lost ``$disconnect`` leaves behind; a push to a gone connection (410) removes
it at once (``disconnect``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imagegw.errors import StateUnavailable

TOKEN_PREFIX = "rt_"  # noqa: S105 - a prefix, not a secret


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RealtimeStore(ABC):
    @abstractmethod
    async def issue_token(self, client: str, *, expires_at: int) -> str:
        """A new token that ``redeem`` exchanges, once and before ``expires_at``, for ``client``."""

    @abstractmethod
    async def redeem(self, token: str, *, now: float) -> str | None:
        """The key name the token was issued to (None: unknown, used or expired)."""

    @abstractmethod
    async def connect(self, connection_id: str, client: str, *, expires_at: int) -> None: ...

    @abstractmethod
    async def client_of(self, connection_id: str) -> str | None: ...

    @abstractmethod
    async def subscribe(self, connection_id: str, job_id: str, *, expires_at: int) -> None: ...

    @abstractmethod
    async def unsubscribe(self, connection_id: str, job_id: str) -> None: ...

    @abstractmethod
    async def subscribers(self, job_id: str) -> list[str]: ...

    @abstractmethod
    async def disconnect(self, connection_id: str) -> None:
        """Forget the connection and its subscriptions."""


@dataclass
class _Connection:
    client: str
    jobs: set[str] = field(default_factory=set)


class MemoryRealtimeStore(RealtimeStore):
    """One process's tokens and connections (``make dev``, tests)."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, int]] = {}
        self._connections: dict[str, _Connection] = {}
        self._jobs: dict[str, set[str]] = {}

    async def issue_token(self, client: str, *, expires_at: int) -> str:
        token = new_token()
        self._tokens[token_digest(token)] = (client, expires_at)
        return token

    async def redeem(self, token: str, *, now: float) -> str | None:
        found = self._tokens.pop(token_digest(token), None)
        if found is None or found[1] <= now:
            return None
        return found[0]

    async def connect(self, connection_id: str, client: str, *, expires_at: int) -> None:
        self._connections[connection_id] = _Connection(client)

    async def client_of(self, connection_id: str) -> str | None:
        connection = self._connections.get(connection_id)
        return connection.client if connection else None

    async def subscribe(self, connection_id: str, job_id: str, *, expires_at: int) -> None:
        connection = self._connections.get(connection_id)
        if connection is None:
            return
        connection.jobs.add(job_id)
        self._jobs.setdefault(job_id, set()).add(connection_id)

    async def unsubscribe(self, connection_id: str, job_id: str) -> None:
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.jobs.discard(job_id)
        self._jobs.get(job_id, set()).discard(connection_id)

    async def subscribers(self, job_id: str) -> list[str]:
        return sorted(self._jobs.get(job_id, set()))

    async def disconnect(self, connection_id: str) -> None:
        connection = self._connections.pop(connection_id, None)
        for job_id in connection.jobs if connection else ():
            self._jobs.get(job_id, set()).discard(connection_id)


def _condition_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


class DynamoDBRealtimeStore(RealtimeStore):
    def __init__(self, table: str, *, client: Callable[[], Any]) -> None:
        self._table = table
        self._factory = client
        self._client: Any = None

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = self._factory()
        method = getattr(self._client, operation)
        try:
            return await asyncio.to_thread(method, TableName=self._table, **kwargs)
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise StateUnavailable("The gateway could not reach its realtime store.") from exc
        except BotoCoreError as exc:
            raise StateUnavailable("The gateway could not reach its realtime store.") from exc

    async def issue_token(self, client: str, *, expires_at: int) -> str:
        token = new_token()
        item = {
            "pk": {"S": f"token#{token_digest(token)}"},
            "client": {"S": client},
            "expires_at": {"N": str(expires_at)},
        }
        await self._call("put_item", Item=item)
        return token

    async def redeem(self, token: str, *, now: float) -> str | None:
        answer = await self._call(
            "delete_item",
            Key={"pk": {"S": f"token#{token_digest(token)}"}},
            ConditionExpression="attribute_exists(pk) AND expires_at > :now",
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
            ReturnValues="ALL_OLD",
        )
        item = (answer or {}).get("Attributes")
        return str(item["client"]["S"]) if item else None

    async def connect(self, connection_id: str, client: str, *, expires_at: int) -> None:
        item = {
            "pk": {"S": f"conn#{connection_id}"},
            "client": {"S": client},
            "expires_at": {"N": str(expires_at)},
        }
        await self._call("put_item", Item=item)

    async def client_of(self, connection_id: str) -> str | None:
        answer = await self._call(
            "get_item", Key={"pk": {"S": f"conn#{connection_id}"}}, ConsistentRead=True
        )
        item = (answer or {}).get("Item")
        return str(item["client"]["S"]) if item else None

    async def subscribe(self, connection_id: str, job_id: str, *, expires_at: int) -> None:
        await self._call(
            "update_item",
            Key={"pk": {"S": f"job#{job_id}"}},
            UpdateExpression="ADD connections :c SET expires_at = :exp",
            ExpressionAttributeValues={
                ":c": {"SS": [connection_id]},
                ":exp": {"N": str(expires_at)},
            },
        )
        await self._call(
            "update_item",
            Key={"pk": {"S": f"conn#{connection_id}"}},
            UpdateExpression="ADD jobs :j",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":j": {"SS": [job_id]}},
        )

    async def unsubscribe(self, connection_id: str, job_id: str) -> None:
        await self._call(
            "update_item",
            Key={"pk": {"S": f"job#{job_id}"}},
            UpdateExpression="DELETE connections :c",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":c": {"SS": [connection_id]}},
        )
        await self._call(
            "update_item",
            Key={"pk": {"S": f"conn#{connection_id}"}},
            UpdateExpression="DELETE jobs :j",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":j": {"SS": [job_id]}},
        )

    async def subscribers(self, job_id: str) -> list[str]:
        answer = await self._call(
            "get_item", Key={"pk": {"S": f"job#{job_id}"}}, ConsistentRead=True
        )
        item = (answer or {}).get("Item") or {}
        return sorted(item.get("connections", {}).get("SS", []))

    async def disconnect(self, connection_id: str) -> None:
        answer = await self._call(
            "delete_item", Key={"pk": {"S": f"conn#{connection_id}"}}, ReturnValues="ALL_OLD"
        )
        item = (answer or {}).get("Attributes") or {}
        for job_id in item.get("jobs", {}).get("SS", []):
            await self._call(
                "update_item",
                Key={"pk": {"S": f"job#{job_id}"}},
                UpdateExpression="DELETE connections :c",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":c": {"SS": [connection_id]}},
            )
