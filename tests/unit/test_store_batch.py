"""Batched DynamoDB reads and writes (`mailbridge.store.batch`) and concurrent S3 puts
(`BlobStore.put_many`) against fake clients: what reaches the service, and what comes back when
it leaves part of a batch unprocessed."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from mailbridge.store.batch import (
    TRANSACT_MAX_ACTIONS,
    Backoff,
    StoreThrottled,
    TransactionLost,
    batch_delete,
    batch_get,
    batch_put,
    chunks,
    from_wire,
    transact,
)
from mailbridge.store.blobs import PUT_WORKERS, BlobStore, Upload


def key(n: int) -> dict[str, str]:
    return {"pk": "TENANT#t", "sk": f"EMAIL#{n}"}


class FakeDynamo:
    """Serves BatchGetItem / BatchWriteItem in the low-level client's wire format, leaving the
    first `hold_back` keys or items of each request unprocessed for the first
    `unprocessed_rounds` requests."""

    def __init__(self, unprocessed_rounds: int = 0, hold_back: int = 1) -> None:
        self.unprocessed_rounds = unprocessed_rounds
        self.hold_back = hold_back
        self.requests: list[dict[str, Any]] = []
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.requests.append(RequestItems)
        ((table, spec),) = RequestItems.items()
        keys = spec["Keys"]
        held, served = (keys[: self.hold_back], keys[self.hold_back :]) if self._unprocessed() else ([], keys)
        response: dict[str, Any] = {"Responses": {table: [dict(k, found={"BOOL": True}) for k in served]}}
        if held:
            response["UnprocessedKeys"] = {table: {**spec, "Keys": held}}
        return response

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.requests.append(RequestItems)
        ((table, puts),) = RequestItems.items()
        held, done = (puts[: self.hold_back], puts[self.hold_back :]) if self._unprocessed() else ([], puts)
        for put in done:
            item = put["PutRequest"]["Item"]
            self.stored[(item["pk"]["S"], item["sk"]["S"])] = item
        return {"UnprocessedItems": {table: held}} if held else {}

    def _unprocessed(self) -> bool:
        if self.unprocessed_rounds > 0:
            self.unprocessed_rounds -= 1
            return True
        return False


def no_sleep() -> tuple[Backoff, list[float]]:
    slept: list[float] = []
    return Backoff(sleep=slept.append), slept


def test_batch_get_asks_100_keys_at_a_time_and_asks_again_for_unprocessed_ones() -> None:
    # Given a table that leaves one key unprocessed in its first two answers (the second answer is
    # to the retry of that key)
    client = FakeDynamo(unprocessed_rounds=2)
    backoff, slept = no_sleep()
    # When 250 keys (and one of them twice) are read
    found = batch_get(client, "emails", [key(n) for n in range(250)] + [key(7)], backoff=backoff)
    # Then every key came back once, in requests of at most 100 keys, the held-back ones asked
    # for again after a backoff
    assert sorted(int(i["sk"].split("#")[1]) for i in found) == list(range(250))
    assert [len(r["emails"]["Keys"]) for r in client.requests] == [100, 1, 1, 100, 50]
    assert len(slept) == 2


def test_batch_get_names_the_projection_with_placeholders() -> None:
    client = FakeDynamo()
    batch_get(client, "emails", [key(1)], consistent=True, projection=["date", "from"])
    spec = client.requests[0]["emails"]
    assert spec["ConsistentRead"] is True
    assert spec["ProjectionExpression"] == "#p0, #p1, #p2, #p3"
    assert list(spec["ExpressionAttributeNames"].values()) == ["pk", "sk", "date", "from"]


def test_batch_put_writes_25_at_a_time_and_retries_unprocessed_items() -> None:
    client = FakeDynamo(unprocessed_rounds=1, hold_back=3)
    backoff, slept = no_sleep()
    items = [{**key(n), "n": n} for n in range(60)]
    batch_put(client, "emails", items, backoff=backoff)
    assert len(client.stored) == 60
    assert [len(r["emails"]) for r in client.requests] == [25, 3, 25, 10]
    assert len(slept) == 1


def test_a_table_that_keeps_throttling_raises_a_retryable_error() -> None:
    client = FakeDynamo(unprocessed_rounds=10**6)
    backoff, slept = no_sleep()
    with pytest.raises(StoreThrottled) as raised:
        batch_get(client, "emails", [key(1), key(2)], backoff=backoff)
    assert raised.value.retryable
    assert len(slept) == backoff.attempts - 1
    # The waits grow (full jitter below an exponential cap)
    assert max(slept) <= 2.0


def test_transactions_are_cut_at_100_actions_and_about_3_5_mb_in_order() -> None:
    small = [{"Put": {"Item": {**key(n)}}} for n in range(150)]
    assert [len(c) for c in chunks(small)] == [TRANSACT_MAX_ACTIONS, 50]
    big = [{"Put": {"Item": {**key(n), "body": "x" * 1_000_000}}} for n in range(5)]
    cut = chunks(big)
    assert [len(c) for c in cut] == [3, 2]
    assert [a for c in cut for a in c] == big


class CancellingClient:
    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        self.sent: list[Any] = []

    def transact_write_items(self, TransactItems: list[Any]) -> None:  # noqa: N803
        from botocore.exceptions import ClientError

        self.sent = TransactItems
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": r} for r in self.reasons],
            },
            "TransactWriteItems",
        )


def test_a_lost_condition_names_the_actions_that_failed() -> None:
    client = CancellingClient(["None", "ConditionalCheckFailed", "None", "ConditionalCheckFailed"])
    actions = [{"Put": {"Item": key(n), "ConditionExpression": "attribute_not_exists(pk)"}} for n in range(4)]
    with pytest.raises(TransactionLost) as lost:
        transact(client, "emails", actions)
    assert lost.value.failed == [1, 3]
    assert all(a["Put"]["TableName"] == "emails" for a in client.sent)


def test_items_reach_the_low_level_client_in_wire_format_and_come_back_as_python_values() -> None:
    # Given an item with every kind of value the store writes
    client = FakeDynamo()
    item = {
        **key(1),
        "n": 3,
        "read": False,
        "gone": None,
        "loc_keys": {"LOC#a"},
        "to": [{"address": "a@example.com", "name": None}],
    }
    # When it is put, and read back through the same fake table
    batch_put(client, "emails", [item])
    stored = client.stored[("TENANT#t", "EMAIL#1")]
    # Then the client got DynamoDB's attribute values (boto3's TypeSerializer), once per item
    assert stored == {
        "pk": {"S": "TENANT#t"},
        "sk": {"S": "EMAIL#1"},
        "n": {"N": "3"},
        "read": {"BOOL": False},
        "gone": {"NULL": True},
        "loc_keys": {"SS": ["LOC#a"]},
        "to": {"L": [{"M": {"address": {"S": "a@example.com"}, "name": {"NULL": True}}}]},
    }
    # and wire items read back are Python values again, numbers as Decimal like the resource's
    assert from_wire(stored) == {**item, "n": Decimal(3)}
    (found,) = batch_get(client, "emails", [key(1)])
    assert found == {**key(1), "found": True}
    assert client.requests[-1]["emails"]["Keys"] == [{"pk": {"S": "TENANT#t"}, "sk": {"S": "EMAIL#1"}}]


def test_batch_delete_sends_wire_keys_once_each() -> None:
    client = FakeDeletes()
    batch_delete(client, "emails", [key(1), key(2), key(1)])
    assert client.deleted == [
        {"pk": {"S": "TENANT#t"}, "sk": {"S": "EMAIL#1"}},
        {"pk": {"S": "TENANT#t"}, "sk": {"S": "EMAIL#2"}},
    ]


class FakeDeletes:
    def __init__(self) -> None:
        self.deleted: list[dict[str, Any]] = []

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.deleted.extend(w["DeleteRequest"]["Key"] for w in RequestItems["emails"])
        return {}


def test_a_transaction_sends_items_keys_and_expression_values_in_wire_format() -> None:
    client = CancellingClient(["None", "None"])
    actions = [
        {"Put": {"Item": {**key(1), "n": 1}, "ConditionExpression": "attribute_not_exists(pk)"}},
        {
            "Update": {
                "Key": key(2),
                "UpdateExpression": "SET thread_id = :t ADD members :m",
                "ExpressionAttributeNames": {"#d": "date"},
                "ExpressionAttributeValues": {":t": "T1", ":m": {"E1"}},
            }
        },
    ]
    with pytest.raises(TransactionLost):  # the fake cancels; only what was sent matters here
        transact(client, "emails", actions)
    put, update = client.sent
    assert put["Put"] == {
        "TableName": "emails",
        "Item": {"pk": {"S": "TENANT#t"}, "sk": {"S": "EMAIL#1"}, "n": {"N": "1"}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    assert update["Update"]["Key"] == {"pk": {"S": "TENANT#t"}, "sk": {"S": "EMAIL#2"}}
    assert update["Update"]["ExpressionAttributeValues"] == {":t": {"S": "T1"}, ":m": {"SS": ["E1"]}}
    assert update["Update"]["ExpressionAttributeNames"] == {"#d": "date"}
    assert update["Update"]["UpdateExpression"] == "SET thread_id = :t ADD members :m"
    # the caller's actions are left as they were (no copy was needed to send them)
    assert actions[0]["Put"]["Item"] == {**key(1), "n": 1}


class SlowS3:
    """Records how many PutObject calls run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:  # noqa: N803
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.keys.append(Key)
        time.sleep(0.02)
        with self._lock:
            self.running -= 1


def test_s3_puts_run_concurrently_in_a_bounded_pool() -> None:
    s3 = SlowS3()
    blobs = BlobStore("mail", client=s3)  # type: ignore[arg-type]
    uploads = [Upload(f"raw/t/a/{n}.eml", b"x") for n in range(40)]
    blobs.put_many(uploads)
    assert sorted(s3.keys) == sorted(u.key for u in uploads)
    assert 1 < s3.most <= PUT_WORKERS


def test_a_failed_put_is_raised_after_the_others_finished() -> None:
    class Failing(SlowS3):
        def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:  # noqa: N803
            if Key.endswith("/3.eml"):
                raise OSError("connection reset")
            super().put_object(Bucket=Bucket, Key=Key, Body=Body, ContentType=ContentType)

    s3 = Failing()
    blobs = BlobStore("mail", client=s3)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="connection reset"):
        blobs.put_many([Upload(f"raw/t/a/{n}.eml", b"x") for n in range(10)])
    assert len(s3.keys) == 9
    assert s3.running == 0
