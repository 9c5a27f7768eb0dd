"""The `stack` fixture deploys the template into moto once per test process and gives every test
the state a fresh deploy leaves (tests/fixtures/moto_baseline.py): nothing an earlier test stored,
sent, scheduled or created reaches the next one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from tests.fixtures.aws import LOCAL_PARAMETERS, Stack, _deploy

ROLE = "arn:aws:iam::123456789012:role/scheduler"


@contextlib.contextmanager
def a_test_with_a_stack() -> Iterator[Stack]:
    """What the `stack` fixture gives one test, from setup to teardown."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _deploy(monkeypatch, LOCAL_PARAMETERS)


def schedule_names() -> set[str]:
    scheduler = boto3.client("scheduler")
    groups = [g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]]
    return {s["Name"] for group in groups for s in scheduler.list_schedules(GroupName=group)["Schedules"]}


def everything_stored(stack: Stack) -> dict[str, object]:
    """Items per table, messages per queue, objects per bucket, schedules, queues, rules, tables."""
    sqs, s3, events = boto3.client("sqs"), boto3.client("s3"), boto3.client("events")
    bus = stack.deployed.buses["EventBus"]
    return {
        "items": {lid: stack.table(lid).scan()["Count"] for lid in stack.deployed.tables},
        "messages": {
            lid: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
            for lid, url in stack.deployed.queue_urls.items()
        },
        "objects": {
            lid: s3.list_objects_v2(Bucket=name).get("KeyCount", 0)
            for lid, name in stack.deployed.buckets.items()
        },
        "schedules": schedule_names(),
        "queues": sorted(sqs.list_queues().get("QueueUrls", [])),
        "rules": sorted(r["Name"] for r in events.list_rules(EventBusName=bus)["Rules"]),
        "tables": sorted(boto3.client("dynamodb").list_tables()["TableNames"]),
    }


def test_the_next_test_gets_the_same_deployment_with_nothing_an_earlier_test_left() -> None:
    # Given a test that stores an item in every table, sends a message to every queue (a FIFO
    # queue's with a deduplication id), stores an object in every bucket, creates a schedule, a
    # queue subscribed to the bus by a rule of its own (as `bus_probe` does) and a table
    with a_test_with_a_stack() as first:
        fresh = everything_stored(first)
        sqs, s3, events = boto3.client("sqs"), boto3.client("s3"), boto3.client("events")
        for lid in first.deployed.tables:
            table = first.table(lid)
            key = {k["AttributeName"]: "x" for k in table.key_schema}
            table.put_item(Item={**key, **{a["AttributeName"]: "x" for a in table.attribute_definitions}})
        for url in first.deployed.queue_urls.values():
            if url.endswith(".fifo"):
                sqs.send_message(
                    QueueUrl=url, MessageBody="left", MessageGroupId="g", MessageDeduplicationId="d"
                )
            else:
                sqs.send_message(QueueUrl=url, MessageBody="left")
        for name in first.deployed.buckets.values():
            s3.put_object(Bucket=name, Key="left-over", Body=b"x")
        some_queue_arn = next(iter(first.deployed.queue_url_by_arn))
        boto3.client("scheduler").create_schedule(
            Name="left-over",
            ScheduleExpression="at(2030-01-01T00:00:00)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": some_queue_arn, "RoleArn": ROLE},
        )
        probe = sqs.create_queue(QueueName="left-over-probe")["QueueUrl"]
        bus = first.deployed.buses["EventBus"]
        events.put_rule(
            Name="left-over", EventBusName=bus, EventPattern=json.dumps({"source": ["mailbridge"]})
        )
        boto3.client("dynamodb").create_table(
            TableName="left-over",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        assert everything_stored(first) != fresh
        assert probe

    # When the next test takes the stack
    with a_test_with_a_stack() as second:
        # Then it is the same deployment (not deployed again), as a fresh deploy left it
        assert second is first
        assert everything_stored(second) == fresh
        assert all(count == 0 for count in fresh["items"].values())  # type: ignore[attr-defined]
        # and a FIFO queue takes the earlier test's deduplication id again
        fifo_url = next(url for url in second.deployed.queue_urls.values() if url.endswith(".fifo"))
        sqs = boto3.client("sqs")
        sqs.send_message(QueueUrl=fifo_url, MessageBody="new", MessageGroupId="g", MessageDeduplicationId="d")
        received = sqs.receive_message(QueueUrl=fifo_url, MaxNumberOfMessages=10).get("Messages", [])
        assert [m["Body"] for m in received] == ["new"]


def test_after_someone_else_resets_moto_the_next_test_gets_a_new_deployment() -> None:
    # Given a deployed stack, then a test that starts moto afresh (which empties every backend)
    with a_test_with_a_stack() as first:
        tables = sorted(first.deployed.tables.values())
    with mock_aws():
        assert boto3.client("dynamodb").list_tables()["TableNames"] == []

    # When the next test takes the stack
    with a_test_with_a_stack() as second:
        # Then the template is deployed again: its tables exist
        assert second is not first
        assert sorted(second.deployed.tables.values()) == tables
        assert sorted(boto3.client("dynamodb").list_tables()["TableNames"]) == tables
