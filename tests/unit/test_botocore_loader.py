"""tests/fixtures/botocore_loader.py: every session of the test process reads botocore's JSON models
through one loader, and the clients of every new session still answer from moto (this tier has no
sockets: a client that escaped to real AWS would fail here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.session
import pytest
from moto import mock_aws

from mailbridge import aws

# The directory boto3 appends to its loader's search paths (boto3.session.Session._setup_loader).
BOTO3_DATA = str(Path(boto3.__file__).parent / "data")


@pytest.fixture
def moto() -> Iterator[None]:
    aws.reset_clients()
    with mock_aws():
        yield
    aws.reset_clients()


def test_every_new_session_uses_the_one_loader_and_lists_boto3_data_once() -> None:
    # Given a first boto3 session that has read a service model
    first = boto3.session.Session()
    first.client("sqs", region_name="us-east-1")

    # When more boto3 and botocore sessions are created afterwards
    later = [boto3.session.Session(), boto3.session.Session()]
    plain = botocore.session.Session()

    # Then they all read through the first session's loader, which lists boto3's data directory once
    loader = first._session.get_component("data_loader")
    assert all(s._session.get_component("data_loader") is loader for s in later)
    assert plain.get_component("data_loader") is loader
    assert loader.search_paths.count(BOTO3_DATA) == 1


def test_clients_and_resources_of_new_sessions_answer_from_moto(moto: None) -> None:
    # Given a bucket and a table created through the cached clients of one session
    aws.s3().create_bucket(Bucket="loader-check")
    aws.dynamodb().create_table(
        TableName="loader-check",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    # When the clients are forgotten (as every `stack` fixture does) and a new session is made
    aws.reset_clients()
    aws.dynamodb().Table("loader-check").put_item(Item={"pk": "a", "n": 1})
    buckets = [b["Name"] for b in aws.s3().list_buckets()["Buckets"]]
    item = aws.dynamodb().Table("loader-check").get_item(Key={"pk": "a"})["Item"]

    # Then the new session's client and resource see what the first stored in moto
    assert buckets == ["loader-check"]
    assert item == {"pk": "a", "n": 1}
