"""tests/fixtures/moto_queries.py: a Query on the table reads its partition, not the whole table,
and every Query answers exactly what moto answers without the patch."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.fixtures import moto_queries

TABLE = "queries"
HASH_ONLY = "queries-hash-only"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        client.create_table(
            TableName=HASH_ONLY,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )
        # Given 5 tenants of 10 items each (3 of them drafts), and 20 hash-only items
        for tenant in range(5):
            for n in range(10):
                kind = "DRAFT" if n % 4 == 0 else "EMAIL"
                item = {
                    "pk": {"S": f"TENANT#t{tenant}"},
                    "sk": {"S": f"{kind}#{(n * 7) % 10:02d}"},
                    "bytes": {"N": str(n * 100 + tenant)},
                    "gsi1pk": {"S": f"SENDER#s{n % 3}"},
                    "gsi1sk": {"S": f"2026-11-{10 + n:02d}#{tenant}"},
                }
                client.put_item(TableName=TABLE, Item=item)
        for n in range(20):
            client.put_item(TableName=HASH_ONLY, Item={"pk": {"S": f"PUSH#{n % 7}#{n}"}, "n": {"N": str(n)}})
        yield client


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "TENANT#t2"}}},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :e)",
        "ExpressionAttributeValues": {":p": {"S": "TENANT#t3"}, ":e": {"S": "EMAIL#"}},
        "ScanIndexForward": False,
    },
    {
        "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": {
            ":p": {"S": "TENANT#t0"},
            ":a": {"S": "EMAIL#02"},
            ":b": {"S": "EMAIL#07"},
        },
    },
    {
        "KeyConditionExpression": "pk = :p",
        "FilterExpression": "bytes > :s",
        "ProjectionExpression": "sk, bytes",
        "ExpressionAttributeValues": {":p": {"S": "TENANT#t4"}, ":s": {"N": "400"}},
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "TENANT#nobody"}}},
    {
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :g",
        "ExpressionAttributeValues": {":g": {"S": "SENDER#s1"}},
        "ScanIndexForward": False,
    },
]


def _answers(client: Any) -> list[Any]:
    """Every query of QUERIES, read in pages of 3, and the hash-only table's query."""
    answers: list[Any] = []
    for query in QUERIES:
        pages = client.get_paginator("query").paginate(
            TableName=TABLE, PaginationConfig={"PageSize": 3}, **query
        )
        answers.append([(page["Items"], page["Count"], page.get("LastEvaluatedKey")) for page in pages])
    answers.append(
        client.query(
            TableName=HASH_ONLY,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "PUSH#3#10"}},
        )["Items"]
    )
    return answers


def test_every_query_answers_as_moto_does_without_the_patch(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto's own answers
    expected = _answers(dynamodb)
    assert [len(pages) for pages in expected[:6]] == [4, 3, 2, 4, 1, 5]  # pages of 3, or one empty
    # When the same queries run with the patch installed
    moto_queries.install(partial(monkeypatch.setattr, raising=False))
    # Then every page, count and resume key is the same
    assert _answers(dynamodb) == expected


def test_a_table_query_lists_only_its_partition(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table import Table

    moto_queries.install(partial(monkeypatch.setattr, raising=False))
    listed: list[int] = []
    patched = Table.all_items

    def counting(self: Any) -> list[Any]:
        items: list[Any] = patched(self)
        listed.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counting)
    # When a tenant's partition (10 of the table's 50 items) is queried
    got = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "TENANT#t1"}},
    )
    # Then its 10 items come back, and only they were listed
    assert got["Count"] == 10
    assert listed == [10]
    # And a query on the index still reads what moto reads: the whole table
    listed.clear()
    dynamodb.query(
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :g",
        ExpressionAttributeValues={":g": {"S": "SENDER#s0"}},
    )
    assert listed == [50]
