"""The runner's moto under concurrent DynamoDB transactions (what 101 concurrent POST /accounts do)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.runner import start_moto
from local.template import REGION

WRITERS = 8
TRANSACTIONS = 40  # per writer


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    moto = start_moto()
    host, port = moto.get_host_and_port()
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=WRITERS),
    )
    yield client
    moto.stop()


def test_concurrent_transactions_on_one_table_all_succeed(dynamodb: Any) -> None:
    # Given a table, as the runner creates them
    table = f"race-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )

    def writer(w: int) -> list[str]:
        failures = []
        for i in range(TRANSACTIONS):
            items = [
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "T"}, "sk": {"S": f"{kind}#{w}#{i}"}, "data": {"S": "x" * 200}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for kind in ("ACCOUNT", "UNIQUE")
            ]
            try:
                dynamodb.transact_write_items(TransactItems=items)
            except ClientError as exc:
                failures.append(exc.response["Error"]["Code"])
        return failures

    # When several clients write transactions to it at the same time
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        failures = [code for codes in pool.map(writer, range(WRITERS)) for code in codes]
    # Then every transaction was written (none failed inside moto)
    assert failures == []
    count = dynamodb.scan(TableName=table, Select="COUNT")["Count"]
    assert count == 2 * WRITERS * TRANSACTIONS
