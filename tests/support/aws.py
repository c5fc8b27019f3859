"""AWS helpers for tests: buckets, secrets, the STS calls a signer makes, a Secrets Manager
that can go down. All of them use real botocore clients, created when called (inside moto),
through the gateway's own client factory (models parsed once per process: fast)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from imagegw.aws.clients import client as aws_client
from imagegw.aws.secrets_cache import Fetch, secretsmanager_fetch

BUCKET = "imagegw-test-images"


def region() -> str:
    return os.environ["AWS_DEFAULT_REGION"]


def process_credentials() -> dict[str, str]:
    """The process's own access key and secret (moto's mock_aws sets its own fake pair)."""
    return {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}


def create_bucket(name: str = BUCKET, *, endpoint_url: str | None = None) -> Any:
    """The bucket in the environment's Region; returns an S3 client for looking inside."""
    s3 = aws_client("s3", region_name=region(), endpoint_url=endpoint_url)
    if region() == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region()})
    return s3


def stored_objects(s3: Any, bucket: str = BUCKET) -> dict[str, dict[str, Any]]:
    """Every object in the bucket: key -> its head (ContentType, ServerSideEncryption...) + Body."""
    objects = {}
    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        answer = s3.get_object(Bucket=bucket, Key=entry["Key"])
        answer["Body"] = answer["Body"].read()
        objects[entry["Key"]] = answer
    return objects


def secrets_client(endpoint_url: str | None = None) -> Any:
    return aws_client("secretsmanager", region_name=region(), endpoint_url=endpoint_url)


def create_secret(name: str, value: Any, *, endpoint_url: str | None = None) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    answer = secrets_client(endpoint_url).create_secret(Name=name, SecretString=text)
    return str(answer["ARN"])


def put_secret(name: str, value: Any, *, endpoint_url: str | None = None) -> None:
    """A new current version, as a rotation or an operator's edit makes it."""
    text = value if isinstance(value, str) else json.dumps(value)
    secrets_client(endpoint_url).put_secret_value(SecretId=name, SecretString=text)


def secret_text(name: str, *, endpoint_url: str | None = None) -> str:
    return str(secrets_client(endpoint_url).get_secret_value(SecretId=name)["SecretString"])


class OutageSwitch:
    """Secrets Manager that can become unreachable: while ``down``, the same real botocore fetch
    goes to a closed port on 127.0.0.1 instead (connection refused, as in an outage)."""

    def __init__(self, secret_id: str, closed_port: int) -> None:
        self.down = False
        self._up = secretsmanager_fetch(secret_id)
        self._down = secretsmanager_fetch(secret_id, endpoint_url=f"http://127.0.0.1:{closed_port}")

    def __call__(self) -> str:
        return (self._down if self.down else self._up)()

    @property
    def fetch(self) -> Fetch:
        return self


@dataclass
class AssumedRoles:
    """What STS answered to each AssumeRole of a signer: access key and expiry, in order.

    Observed with a botocore ``after-call`` hook on a real STS client (moto answers), so tests
    can match the URLs' X-Amz-Credential against the credentials STS really handed out.
    """

    answers: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Any:
        sts = aws_client("sts", region_name=region())
        sts.meta.events.register("after-call.sts.AssumeRole", self._record)
        return sts

    def _record(self, parsed: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.answers.append(parsed["Credentials"])

    def secrets(self) -> dict[str, str]:
        return {answer["AccessKeyId"]: answer["SecretAccessKey"] for answer in self.answers}

    def expiration_of(self, access_key: str) -> float:
        for answer in self.answers:
            if answer["AccessKeyId"] == access_key:
                expiration = answer["Expiration"]
                assert isinstance(expiration, dt.datetime)
                return expiration.timestamp()
        raise AssertionError(f"STS never handed out {access_key}")
