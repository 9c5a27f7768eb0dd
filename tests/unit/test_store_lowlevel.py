"""The sync's hot DynamoDB path on the low-level client (`mailbridge.aws.dynamodb_client`), on moto:
an ingest batch makes no request through boto3's resource layer (its deep copy and per-attribute
walk were the largest share of the sync's CPU), the items it stores read back as the same Python
values, and a store handed a table gets a low-level client for that table's endpoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.resources import create_table
from local.template import load_template
from mailbridge import aws
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import location_sk
from mailbridge.sync.ingest import Mailbox, ingest_batch, prepare_batch
from tests.integration.sync_harness import message

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
WHEN = dt.datetime(2026, 11, 17, 10, tzinfo=dt.UTC)
MAILBOX = Mailbox("t1", "acc_0123456789abcdef0123", "user@example.com", "INBOX", 7)


@pytest.fixture(scope="module")
def tables() -> Iterator[tuple[str, str]]:
    """The emails table and the mail bucket, once per module."""
    with mock_aws():
        aws.reset_clients()
        kms = boto3.client("kms", region_name="us-east-1")
        TEMPLATE.physical_ids["DataKey"] = kms.create_key()["KeyMetadata"]["KeyId"]
        emails = create_table(boto3.client("dynamodb", region_name="us-east-1"), TEMPLATE, "EmailsTable")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="mail-bucket")
        yield emails, "mail-bucket"
        aws.reset_clients()


class Calls:
    """DynamoDB operations one client makes (botocore's before-call event)."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        self.client = client
        client.meta.events.register("before-call.dynamodb.*", self.record)

    def record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def stop(self) -> None:
        self.client.meta.events.unregister("before-call.dynamodb.*", self.record)


def fetched(uid: int, raw: bytes) -> FetchedMessage:
    return FetchedMessage(uid=uid, flags=("\\Seen",), internal_date=WHEN, modseq=None, size=len(raw), raw=raw)


def test_an_ingest_batch_never_goes_through_the_resource_layer(tables: tuple[str, str]) -> None:
    emails_table, bucket = tables
    emails = EmailStore(emails_table)
    resource_calls = Calls(aws.dynamodb().meta.client)
    plain_calls = Calls(aws.dynamodb_client())
    batch = [fetched(uid, message(f"Order {uid}", msgid=f"o{uid}@customer.example")) for uid in (1, 2, 3)]
    try:
        # When a batch of three new messages is ingested, and then again (a replay)
        first = ingest_batch(MAILBOX, batch, emails, BlobStore(bucket))
        again = ingest_batch(MAILBOX, batch, emails, BlobStore(bucket))
    finally:
        resource_calls.stop()
        plain_calls.stop()
    # Then every DynamoDB request went through the low-level client: one read round, one
    # transaction, one batch write of the locations; the replay finds its locations stored and
    # writes none of them again
    assert resource_calls.names == []
    assert plain_calls.names == [
        "BatchGetItem",
        "TransactWriteItems",
        "BatchWriteItem",
        "BatchGetItem",
        "TransactWriteItems",
    ]
    assert [r.email_id for r in again] == [r.email_id for r in first]
    assert all(r.new_location for r in first)
    assert not any(r.new_location for r in again)


def test_what_ingest_stores_reads_back_as_the_same_python_values(tables: tuple[str, str]) -> None:
    emails_table, bucket = tables
    emails = EmailStore(emails_table)
    mailbox = replace(MAILBOX, tenant_id="t2")
    raw = message("Quote", msgid="q5@customer.example")
    (result,) = ingest_batch(mailbox, [fetched(5, raw)], emails, BlobStore(bucket))
    assert result.email_id is not None
    # Read through the resource layer, the reference conversion: sets stay sets, numbers Decimal,
    # nested address lists lists of maps, booleans booleans
    item = emails.get_email(mailbox.tenant_id, result.email_id)
    assert item is not None
    assert item["version"] == Decimal(1)
    assert isinstance(item["loc_keys"], set)
    assert len(item["loc_keys"]) == 1
    assert item["accounts"] == {MAILBOX.account_id}
    assert item["from"] == [{"name": "Carol Customer", "address": "carol@customer.example"}]
    assert item["read"] is True
    # and the plan read (low-level client, TypeDeserializer) sees the same values
    planned = emails.plan_read(mailbox.tenant_id, [f"EMAIL#{result.email_id}"])
    assert planned[f"EMAIL#{result.email_id}"]["thread_id"] == item["thread_id"]
    assert planned[f"EMAIL#{result.email_id}"]["date"] == item["date"]


def test_a_store_handed_a_table_talks_to_that_tables_endpoint() -> None:
    resource = boto3.resource(
        "dynamodb",
        region_name="eu-west-1",
        endpoint_url="http://localhost:4566",
        aws_access_key_id="local-key",
        aws_secret_access_key="local-secret",
    )
    store = EmailStore("emails", table=resource.Table("emails"))
    client: Any = store.client
    assert client is not resource.meta.client
    assert client.meta.endpoint_url == "http://localhost:4566"
    assert client.meta.region_name == "eu-west-1"
    assert client._get_credentials().access_key == "local-key"
    assert client is store.client  # made once per store


def test_a_store_that_made_its_own_table_uses_the_shared_low_level_client(tables: tuple[str, str]) -> None:
    # Given a store whose resource table was made on first use (not handed in)
    store = EmailStore(tables[0])
    assert store.get_email("t1", "none") is None
    # Then its low-level client is the process's one, the client request hooks are put on
    assert store.client is aws.dynamodb_client()


def test_no_batch_helper_is_handed_the_resource_layers_client() -> None:
    """store/batch.py serializes plain values itself (TypeSerializer): a `table.meta.client` (the
    resource layer's, which serializes too) would store every value wrapped twice. Every call of a
    batch helper in the store passes the repository's low-level `self.client`."""
    import ast
    from pathlib import Path

    import mailbridge.store

    helpers = {"batch_get", "batch_put", "batch_delete", "transact", "BatchRead"}
    wrong = []
    for path in Path(mailbridge.store.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in helpers
                and node.args
                and ast.unparse(node.args[0]).endswith("meta.client")
            ):
                wrong.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:60]}")
    assert wrong == []


def test_a_batch_prepared_for_another_mailbox_or_other_messages_is_normalized_again(
    tables: tuple[str, str],
) -> None:
    emails_table, bucket = tables
    emails = EmailStore(emails_table)
    here = replace(MAILBOX, tenant_id="t3", uidvalidity=8)
    batch = [fetched(uid, message(f"Order {uid}", msgid=f"p{uid}@customer.example")) for uid in (1, 2)]
    other = [fetched(2, message("Other 2", msgid="x2@customer.example"))]
    # Given the batch normalized for a mailbox of another UIDVALIDITY, and other messages
    # normalized for this mailbox
    for_elsewhere = prepare_batch(replace(here, uidvalidity=7), batch[:1])
    for_others = prepare_batch(here, other)
    # When the batch is ingested with either
    first = ingest_batch(here, batch[:1], emails, BlobStore(bucket), prepared=for_elsewhere)
    second = ingest_batch(here, batch[1:], emails, BlobStore(bucket), prepared=for_others)
    # Then each message is stored at its location in this mailbox, as what it is
    stored = emails.plan_read(here.tenant_id, [location_sk(here.account_id, "INBOX", 8, u) for u in (1, 2)])
    assert [stored[location_sk(here.account_id, "INBOX", 8, u)]["email_id"] for u in (1, 2)] == [
        first[0].email_id,
        second[0].email_id,
    ]
    assert emails.get_email(here.tenant_id, str(second[0].email_id))["subject"] == "Order 2"  # type: ignore[index]
    assert emails.plan_read(here.tenant_id, [location_sk(here.account_id, "INBOX", 7, 1)]) == {}


def test_every_client_sends_mailbridges_user_agent_made_once(
    tables: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Config(user_agent=...): the header names mailbridge, and botocore does not sanitize its
    default string's components again per request (7% of the sync's CPU without it)."""
    from botocore import useragent

    sanitized: list[str] = []
    sanitize = useragent.sanitize_user_agent_string_component

    def counted(raw: str, allow_hash: bool) -> str:
        sanitized.append(raw)
        return sanitize(raw, allow_hash)

    monkeypatch.setattr(useragent, "sanitize_user_agent_string_component", counted)
    table, bucket = tables
    sent: list[str] = []
    for client in (aws.dynamodb_client(), aws.s3()):
        client.meta.events.register(
            "before-send", lambda request, **_: sent.append(request.headers["User-Agent"])
        )
    for _ in range(3):
        aws.dynamodb_client().describe_table(TableName=table)
        aws.s3().put_object(Bucket=bucket, Key="ua-probe", Body=b"x")
    assert len(sent) == 6
    assert all((v.decode() if isinstance(v, bytes) else v).startswith(aws.user_agent() + " ") for v in sent)
    assert aws.user_agent().startswith("mailbridge/0")
    assert sanitized == []
