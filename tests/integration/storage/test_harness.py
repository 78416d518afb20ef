"""The S3 endpoint of the harness is a real HTTP server that boto3 reaches over the network stack."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError


def test_s3_endpoint_speaks_http(s3_endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="harness-check")
    client.put_object(Bucket="harness-check", Key="a/b.txt", Body=b"payload")

    assert client.get_object(Bucket="harness-check", Key="a/b.txt")["Body"].read() == b"payload"
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket="harness-check", Key="absent")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
