"""The gateway's logging setup keeps AWS SDK wire logs out, whatever the root level says."""

from __future__ import annotations

import logging
import os

import pytest

from imagegw.logs import configure_logging
from imagegw.storage.s3 import s3_client

from support.leaks import signature_of


def test_a_debug_root_logger_does_not_get_botocores_signatures_or_keys(
    aws_environment: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Lambda's log-level setting can put the root logger at DEBUG; botocore would then log
    every signature it computes (and request/response bodies: secret values, image bytes)."""
    configure_logging("INFO")
    caplog.set_level(logging.DEBUG)

    url = s3_client("eu-west-1").generate_presigned_url(
        "get_object", Params={"Bucket": "imagegw-logs", "Key": "images/a.png"}, ExpiresIn=60
    )

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert signature_of(url) not in logged
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in logged
    assert not [record for record in caplog.records if record.name.startswith("botocore")]
    # Warnings still get through.
    logging.getLogger("botocore.credentials").warning("visible")
    assert caplog.records[-1].getMessage() == "visible"
