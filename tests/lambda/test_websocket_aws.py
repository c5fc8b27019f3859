"""The progress WebSocket on AWS, through the real handlers against moto: DynamoDB for tokens,
connections and subscriptions, API Gateway's Management API for pushes.

The gateway handler issues the token and queues the job, the WebSocket handler takes
``$connect`` / messages / ``$disconnect`` events as API Gateway sends them, and the worker
handler runs the job and pushes its progress to the subscribed connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_harness import REGION, JobsAws
from botocore.stub import Stubber
from lambda_harness import FakeLambdaContext, load_event, response_body, with_authorization
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID
from test_event_invocations import async_generate_event

import imagegw.entrypoints.websocket
import imagegw.entrypoints.worker
from imagegw.entrypoints.progress_push import ConnectionPusher, PushingJobStore

pytest_plugins = ["lambda_fixtures", "aws_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]
REALTIME_TABLE = "imagegw-realtime-test"
API = "abc123"
ENDPOINT = f"https://{API}.execute-api.{REGION}.amazonaws.com/prod"
OTHER_KEY = "sk-imagegw-other"


@pytest.fixture
def realtime_aws(jobs_aws: JobsAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsAws]:
    jobs_aws.dynamodb.create_table(
        TableName=REALTIME_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("IMAGEGW_REALTIME_TABLE", REALTIME_TABLE)
    monkeypatch.setenv("IMAGEGW_WEBSOCKET_ENDPOINT", ENDPOINT)
    monkeypatch.setenv(
        "IMAGEGW_WEBSOCKET_URL", f"wss://{API}.execute-api.{REGION}.amazonaws.com/prod"
    )
    monkeypatch.setenv("IMAGEGW_API_KEYS", f"sk-imagegw-dev,{OTHER_KEY}")
    monkeypatch.setattr(imagegw.entrypoints.websocket, "_runtime", None)
    monkeypatch.setattr(imagegw.entrypoints.websocket, "_entry", None)
    yield jobs_aws
    runtime = imagegw.entrypoints.websocket._runtime
    if runtime is not None:
        import asyncio

        asyncio.get_event_loop().run_until_complete(runtime.aclose())


def ws_event(kind: str, connection_id: str, **fields: Any) -> dict[str, Any]:
    route = {"CONNECT": "$connect", "DISCONNECT": "$disconnect"}.get(kind, "$default")
    event: dict[str, Any] = {
        "requestContext": {
            "eventType": kind,
            "connectionId": connection_id,
            "routeKey": route,
            "domainName": f"{API}.execute-api.{REGION}.amazonaws.com",
            "stage": "prod",
            "apiId": API,
        },
        "isBase64Encoded": False,
    }
    event.update(fields)
    return event


def websocket(event: dict[str, Any]) -> dict[str, Any]:
    return imagegw.entrypoints.websocket.handler(event, FakeLambdaContext())


def pushed(connection_id: str) -> list[dict[str, Any]]:
    """Every message posted to the connection so far (moto keeps them end to end)."""
    backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION]
    text = backend.connections[connection_id].data.decode("utf-8")
    decoder = json.JSONDecoder()
    messages, offset = [], 0
    while offset < len(text):
        message, offset = decoder.raw_decode(text, offset)
        messages.append(message)
    return messages


def issue_token(handler: Handler, authorization: str = "Bearer sk-imagegw-dev") -> dict[str, Any]:
    event = load_event("rest-v1-generate")
    event["path"] = "/v1/realtime/tokens"
    event["pathParameters"] = {"proxy": "v1/realtime/tokens"}
    event["requestContext"]["path"] = "/Prod/v1/realtime/tokens"
    event["body"] = ""
    response = handler(with_authorization(event, authorization), FakeLambdaContext())
    assert response["statusCode"] == 200, response.get("body")
    body: dict[str, Any] = json.loads(response_body(response))
    return body


def submit(handler: Handler, authorization: str = "Bearer sk-imagegw-dev") -> str:
    response = handler(
        with_authorization(async_generate_event(), authorization), FakeLambdaContext()
    )
    assert response["statusCode"] == 202, response.get("body")
    job_id: str = json.loads(response_body(response))["id"]
    return job_id


def test_connect_subscribe_and_the_worker_pushes_until_the_job_ends(
    realtime_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    issued = issue_token(cold_handler)
    assert issued["url"] == f"wss://{API}.execute-api.{REGION}.amazonaws.com/prod"
    connected = websocket(
        ws_event("CONNECT", "conn-1", queryStringParameters={"token": issued["token"]})
    )
    assert connected == {"statusCode": 200}
    job_id = submit(cold_handler)
    body = json.dumps({"type": "subscribe", "job_id": job_id})
    assert websocket(ws_event("MESSAGE", "conn-1", body=body)) == {"statusCode": 200}
    first = pushed("conn-1")
    assert first[0] == {"type": "subscribed", "job_id": job_id}
    assert first[1]["type"] == "job.progress"
    assert first[1]["job"]["progress"]["stage"] == "queued"

    assert realtime_aws.deliver(imagegw.entrypoints.worker.handler, lambda_context) == {
        "batchItemFailures": []
    }
    messages = pushed("conn-1")
    stages = [m["job"]["progress"]["stage"] for m in messages[1:]]
    assert stages[0] == "queued"
    assert "generating" in stages
    assert stages[-1] == "succeeded"
    assert messages[-1]["type"] == "job.succeeded"
    assert len(messages[-1]["job"]["result"]["data"]) == 1
    # The finished job's subscribers are forgotten.
    item = realtime_aws.dynamodb.get_item(
        TableName=REALTIME_TABLE, Key={"pk": {"S": f"job#{job_id}"}}
    ).get("Item", {})
    assert "connections" not in item

    assert websocket(ws_event("DISCONNECT", "conn-1")) == {"statusCode": 200}
    gone = realtime_aws.dynamodb.get_item(
        TableName=REALTIME_TABLE, Key={"pk": {"S": "conn#conn-1"}}
    )
    assert "Item" not in gone


def test_a_token_connects_once(realtime_aws: JobsAws, cold_handler: Handler) -> None:
    issued = issue_token(cold_handler)
    event = ws_event("CONNECT", "conn-1", queryStringParameters={"token": issued["token"]})
    assert websocket(event)["statusCode"] == 200
    assert (
        websocket(ws_event("CONNECT", "conn-2", queryStringParameters={"token": issued["token"]}))[
            "statusCode"
        ]
        == 401
    )


@pytest.mark.parametrize(
    ("protocols", "status"),
    [
        ("imagegw.v1, imagegw.key.sk-imagegw-dev", 200),
        ("imagegw.v1, imagegw.key.sk-wrong", 401),
        (None, 401),
    ],
)
def test_the_key_in_the_subprotocol_header(
    realtime_aws: JobsAws, cold_handler: Handler, protocols: str | None, status: int
) -> None:
    headers = {"Sec-WebSocket-Protocol": protocols} if protocols else {}
    answer = websocket(ws_event("CONNECT", "conn-1", headers=headers))
    assert answer["statusCode"] == status
    if status == 200:
        # Only the protocol, never the credential, goes back.
        assert answer["headers"] == {"Sec-WebSocket-Protocol": "imagegw.v1"}


def test_a_key_cannot_subscribe_to_another_keys_job(
    realtime_aws: JobsAws, cold_handler: Handler
) -> None:
    theirs = submit(cold_handler, f"Bearer {OTHER_KEY}")
    issued = issue_token(cold_handler)
    websocket(ws_event("CONNECT", "conn-1", queryStringParameters={"token": issued["token"]}))
    websocket(
        ws_event("MESSAGE", "conn-1", body=json.dumps({"type": "subscribe", "job_id": theirs}))
    )
    (refused,) = pushed("conn-1")
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "job_not_found"
    item = realtime_aws.dynamodb.get_item(
        TableName=REALTIME_TABLE, Key={"pk": {"S": f"job#{theirs}"}}
    )
    assert "Item" not in item


def test_a_gone_connection_is_forgotten_when_a_push_fails_with_410(
    realtime_aws: JobsAws, cold_handler: Handler
) -> None:
    job_id = submit(cold_handler)
    issued = issue_token(cold_handler)
    websocket(ws_event("CONNECT", "conn-1", queryStringParameters={"token": issued["token"]}))
    websocket(
        ws_event("MESSAGE", "conn-1", body=json.dumps({"type": "subscribe", "job_id": job_id}))
    )
    runtime = imagegw.entrypoints.websocket.websocket_runtime()

    client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error(
        "post_to_connection", service_error_code="GoneException", http_status_code=410
    )
    stubber.activate()
    store = runtime.job_store
    assert isinstance(store, PushingJobStore)
    pushing = PushingJobStore(
        store.inner, runtime, pusher=ConnectionPusher(ENDPOINT, client=lambda endpoint: client)
    )
    import asyncio

    asyncio.get_event_loop().run_until_complete(pushing.push(job_id))
    stubber.assert_no_pending_responses()
    assert (
        asyncio.get_event_loop().run_until_complete(runtime.realtime_store.subscribers(job_id))
        == []
    )
    assert (
        asyncio.get_event_loop().run_until_complete(runtime.realtime_store.client_of("conn-1"))
        is None
    )
