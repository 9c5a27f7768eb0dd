from __future__ import annotations

import json
from pathlib import Path

import boto3
from moto import mock_aws

from local.clock import ManualClock
from local.pump import sqs_record
from local.resources import create_resources, tables_from_template
from local.template import load_template

ROOT = Path(__file__).resolve().parents[3]


def test_sqs_record_has_the_lambda_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "MD5OfBody": "md5",
        "Body": "{}",
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1",
            "SenderId": "AID",
            "ApproximateFirstReceiveTimestamp": "2",
            "MessageGroupId": "g",
            "SequenceNumber": "9",
            "MessageDeduplicationId": "d",
        },
        "MD5OfMessageAttributes": "md5a",
        "MessageAttributes": {"kind": {"StringValue": "x", "DataType": "String"}},
    }
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q.fifo")
    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfMessageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["attributes"]["MessageGroupId"] == "g"
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "x", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    assert record["eventSource"] == "aws:sqs"


@mock_aws
def test_tables_from_template_under_mock_aws() -> None:
    # Given / When
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    tables = tables_from_template(dynamodb, ROOT / "template.yaml")
    # Then
    emails = dynamodb.describe_table(TableName=tables["EmailsTable"])["Table"]
    assert {ix["IndexName"] for ix in emails["GlobalSecondaryIndexes"]} == {
        "gsi1",
        "gsi2",
        "gsi3",
        "gsi4",
        "gsi5",
        "gsi6",
        "gsi7",
    }
    ttl = dynamodb.describe_time_to_live(TableName=tables["AccountsTable"])["TimeToLiveDescription"]
    assert ttl == {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}


@mock_aws
def test_create_resources_with_the_probe_overlay() -> None:
    # Given
    template = load_template([ROOT / "template.yaml", ROOT / "tests/e2e/probe/template.yaml"])
    session = boto3.session.Session(region_name="us-east-1")
    # When
    deployed = create_resources(session, template)
    # Then the DLQ exists before the queue that names it, and the rule routes to the queue
    sqs = session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=deployed.queue_urls["ProbeQueue"], AttributeNames=["All"])
    redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 2
    assert redrive["deadLetterTargetArn"].endswith("ProbeDeadLetterQueue")
    assert attributes["Attributes"]["VisibilityTimeout"] == "60"
    session.client("events").put_events(
        Entries=[
            {
                "EventBusName": "mailbridge-dev",
                "Source": "mailbridge",
                "DetailType": "probe.ping",
                "Detail": "{}",
            }
        ]
    )
    got = sqs.receive_message(QueueUrl=deployed.queue_urls["ProbeQueue"])
    assert json.loads(got["Messages"][0]["Body"])["detail-type"] == "probe.ping"
    assert deployed.keys["DataKey"] in template.functions()["ApiFunction"].environment["DATA_KEY_ID"]


def test_manual_clock_only_moves_when_told() -> None:
    clock = ManualClock()
    start = clock.now()
    clock.advance(90)
    assert (clock.now() - start).total_seconds() == 90
