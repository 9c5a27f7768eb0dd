"""The repository base's answers to what DynamoDB answers (mailbridge.store.base), without moto:
a table stand-in raises the service's errors (botocore ClientError, the shapes of the
PutItem / TransactWriteItems API references) and records the requests that reach it.

A lost condition is a `Conflict` (409); every other error (throttling, an invalid value) is raised
as it came, so it is retried or answered as the fault it is, never as a conflict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from boto3.dynamodb.conditions import Attr, Key
from boto3.exceptions import DynamoDBNeedsKeyConditionError
from botocore.exceptions import ClientError

from mailbridge.errors import Conflict, Invalid, MailbridgeError, NotFound
from mailbridge.store import pagination
from mailbridge.store.base import DynamoRepository, Write, is_condition_failure


def client_error(code: str, reasons: list[Any] | None = None, operation: str = "PutItem") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "m"}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, operation)  # type: ignore[arg-type]


class Client:
    def __init__(self, table: Table) -> None:
        self.table = table

    def transact_write_items(self, **kwargs: Any) -> None:
        self.table.requests.append(("transact_write_items", kwargs))
        if self.table.error is not None:
            raise self.table.error


class Meta:
    def __init__(self, table: Table) -> None:
        self.client = Client(table)


class Table:
    """Answers every write with `error` (None: success), a query with `page`; records requests."""

    def __init__(
        self,
        error: Exception | None = None,
        page: dict[str, Any] | None = None,
        item: dict[str, Any] | None = None,
    ) -> None:
        self.error = error
        self.page = {"Items": []} if page is None else page
        self.item = item
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.meta = Meta(self)

    def put_item(self, **kwargs: Any) -> None:
        self.requests.append(("put_item", kwargs))
        if self.error is not None:
            raise self.error

    def delete_item(self, **kwargs: Any) -> None:
        self.requests.append(("delete_item", kwargs))

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(("get_item", kwargs))
        return {} if self.item is None else {"Item": self.item}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(("query", kwargs))
        return self.page


@pytest.fixture(autouse=True)
def cursor_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagination, "signing_key", lambda: b"k" * 64)
    return


def repo(table: Table) -> DynamoRepository:
    return DynamoRepository("Emails", table)  # type: ignore[arg-type]


def canceled(*codes: Any) -> ClientError:
    reasons = [{"Code": c} if isinstance(c, str) else c for c in codes]
    return client_error("TransactionCanceledException", reasons, "TransactWriteItems")


# ------------------------------------------------------------------------------ create / replace


def test_a_create_that_loses_its_condition_is_a_conflict_and_other_errors_pass_through() -> None:
    # Given a table whose conditional put fails, When an item is created, Then 409 already_exists
    with pytest.raises(Conflict) as caught:
        repo(Table(client_error("ConditionalCheckFailedException"))).create({"pk": "p", "sk": "s"})
    assert (caught.value.code, caught.value.message) == ("already_exists", "the item already exists")
    # And throttling is raised as it came (retried by the caller), not answered as a conflict
    throttled = client_error("ProvisionedThroughputExceededException")
    with pytest.raises(ClientError) as raw:
        repo(Table(throttled)).create({"pk": "p", "sk": "s"})
    assert raw.value is throttled


def test_a_replace_at_a_stale_version_is_a_conflict_and_other_errors_pass_through() -> None:
    with pytest.raises(Conflict) as caught:
        repo(Table(client_error("ConditionalCheckFailedException"))).replace(
            {"pk": "p", "sk": "s"}, expected_version=3
        )
    assert (caught.value.code, caught.value.message) == (
        "version_conflict",
        "the item was changed by someone else",
    )
    invalid = client_error("ValidationException")
    with pytest.raises(ClientError) as raw:
        repo(Table(invalid)).replace({"pk": "p", "sk": "s"}, expected_version=3)
    assert raw.value is invalid


def test_a_replace_without_a_version_creates_the_item_only_if_it_is_new() -> None:
    # Given nothing read before (expected_version None), When the item is written
    table = Table()
    assert repo(table).replace({"pk": "p", "sk": "s"}, expected_version=None) == {
        "pk": "p",
        "sk": "s",
        "version": 1,
    }
    # Then it is put at version 1 on the condition that the key is new
    ((operation, request),) = table.requests
    assert (operation, request["Item"]) == ("put_item", {"pk": "p", "sk": "s", "version": 1})
    assert request["ConditionExpression"] == "attribute_not_exists(pk)"
    # And an item that exists meanwhile is a conflict
    with pytest.raises(Conflict) as caught:
        repo(Table(client_error("ConditionalCheckFailedException"))).replace(
            {"pk": "p", "sk": "s"}, expected_version=None
        )
    assert caught.value.code == "already_exists"


def test_delete_removes_the_item_by_its_key() -> None:
    table = Table()
    repo(table).delete("TENANT#acme", "EMAIL#e1")
    assert table.requests == [("delete_item", {"Key": {"pk": "TENANT#acme", "sk": "EMAIL#e1"}})]


def test_a_read_is_eventually_consistent_unless_asked_otherwise() -> None:
    # Given a stored item
    table = Table(item={"pk": "TENANT#acme", "sk": "EMAIL#e1", "version": 2})
    # When it is read plainly and then with consistent=True
    assert repo(table).get("TENANT#acme", "EMAIL#e1") == {"pk": "TENANT#acme", "sk": "EMAIL#e1", "version": 2}
    repo(table).get("TENANT#acme", "EMAIL#e1", consistent=True)
    # Then DynamoDB is asked for an eventually consistent read (half the read capacity), then for
    # a strongly consistent one (GetItem API reference, ConsistentRead)
    key = {"pk": "TENANT#acme", "sk": "EMAIL#e1"}
    assert table.requests == [
        ("get_item", {"Key": key, "ConsistentRead": False}),
        ("get_item", {"Key": key, "ConsistentRead": True}),
    ]
    # And an item that is not there reads as None
    assert repo(Table()).get("TENANT#acme", "EMAIL#e2") is None


def test_an_error_without_a_service_response_is_not_a_conflict() -> None:
    # A network error has no `response`; one with a response of another shape is no conflict either
    # nor is one whose response has no `Error` part
    for error in (ConnectionError("reset"), _WithResponse("not a mapping"), _WithResponse({})):
        with pytest.raises(type(error)):
            repo(Table(error)).create({"pk": "p", "sk": "s"})


class _WithResponse(Exception):
    def __init__(self, response: Any) -> None:
        super().__init__("odd")
        self.response = response


# ------------------------------------------------------------------------------ transactions


def writes() -> list[Write]:
    return [
        Write({"Put": {"Item": {"pk": "p", "sk": "a"}}}, lambda: NotFound("first", code="first_failed")),
        Write({"Put": {"Item": {"pk": "p", "sk": "b"}}}, lambda: NotFound("second", code="second_failed")),
    ]


def test_a_transaction_names_the_first_write_whose_condition_failed() -> None:
    # Given DynamoDB's reasons in the order of the actions: the second one's condition failed
    table = Table(canceled("None", "ConditionalCheckFailed"))
    # When the transaction runs, Then the error is the second write's
    with pytest.raises(NotFound) as caught:
        repo(table).transact(writes())
    assert caught.value.code == "second_failed"
    # And every action reached DynamoDB with the table's name
    ((operation, request),) = table.requests
    assert operation == "transact_write_items"
    assert request["TransactItems"] == [
        {"Put": {"Item": {"pk": "p", "sk": "a"}, "TableName": "Emails"}},
        {"Put": {"Item": {"pk": "p", "sk": "b"}, "TableName": "Emails"}},
    ]


def test_a_transaction_lost_to_a_concurrent_one_is_a_conflict() -> None:
    cases: list[tuple[Any, ...]] = [
        ("TransactionConflict", "None"),
        ("None", "TransactionConflict"),
        ({}, "TransactionConflict"),  # a reason without a code
    ]
    for reasons in cases:
        with pytest.raises(Conflict) as caught:
            repo(Table(canceled(*reasons))).transact(writes())
        # the 409 the API answers, telling the caller to try again
        assert (caught.value.code, caught.value.message) == (
            "conflict",
            "a concurrent change got there first; try again",
        ), reasons


@pytest.mark.parametrize(
    "reasons",
    [
        ("ValidationError", "None"),  # an invalid value: retrying cannot help
        ("ConditionalCheckFailed", "ThrottlingError"),  # throttled: retried as such
        ("ItemCollectionSizeLimitExceeded",),
        ("None", "None"),  # no reason that is about another writer
        (),
    ],
)
def test_a_transaction_cancelled_for_another_reason_is_raised_as_it_came(reasons: tuple[str, ...]) -> None:
    error = canceled(*reasons)
    with pytest.raises(ClientError) as raw:
        repo(Table(error)).transact(writes())
    assert raw.value is error


def test_a_transaction_cancelled_without_reasons_is_not_a_conflict() -> None:
    without = client_error("TransactionCanceledException", None, "TransactWriteItems")
    with pytest.raises(ClientError) as raw:
        repo(Table(without)).transact(writes())
    assert raw.value is without


def failed_write(number: int) -> Callable[[], MailbridgeError]:
    return lambda: NotFound("the write failed", code=f"write_{number}")


def test_a_transaction_whose_reasons_are_all_of_a_conflict_or_none_names_the_failed_write() -> None:
    # Given four writes: no reason, a reason without a code, a lost race, a failed condition
    # (every kind of reason that is about the table's state, at once)
    four = [Write({"Put": {"Item": {"pk": "p", "sk": str(i)}}}, failed_write(i)) for i in range(4)]
    table = Table(canceled("None", {}, "TransactionConflict", "ConditionalCheckFailed"))
    # When the transaction runs, Then the error is the write whose condition failed
    with pytest.raises(NotFound) as caught:
        repo(table).transact(four)
    assert caught.value.code == "write_3"


def test_reasons_that_are_not_objects_count_for_nothing() -> None:
    # What the other stores ask before answering a write with 409 (e.g. EmailStore.transition)
    assert is_condition_failure(canceled(["ConditionalCheckFailed"], "None")) is False
    assert is_condition_failure(canceled(["ConditionalCheckFailed"], "TransactionConflict")) is True


# ------------------------------------------------------------------------------ cursors


def test_a_cursor_made_at_an_item_resumes_the_listing_right_after_it() -> None:
    # Given a listing of a tenant's emails by an index
    table = Table()
    condition = Key("gsi1pk").eq("TENANT#acme")
    key = {"pk": "TENANT#acme", "sk": "EMAIL#e7", "gsi1pk": "TENANT#acme", "gsi1sk": "2026-01-02"}
    # When a page filler stops at an item and makes the cursor there
    cursor = repo(table).cursor_at("acme", key, index="gsi1", key_condition=condition)
    assert cursor is not None
    # Then the next page of the same listing starts right after that item
    repo(table).query_page(tenant_id="acme", key_condition=condition, cursor=cursor, index="gsi1")
    ((_, request),) = table.requests
    assert request["ExclusiveStartKey"] == key
    assert request["IndexName"] == "gsi1"


@pytest.mark.parametrize("limit", [1, 100])
def test_a_page_of_1_to_100_items_is_asked_for_as_such(limit: int) -> None:
    table = Table()
    repo(table).query_page(tenant_id="acme", key_condition=Key("pk").eq("TENANT#acme"), limit=limit)
    ((_, request),) = table.requests
    assert request["Limit"] == limit


@pytest.mark.parametrize("limit", [0, 101])
def test_a_page_size_outside_1_to_100_is_400_invalid_limit_and_nothing_is_read(limit: int) -> None:
    table = Table()
    with pytest.raises(Invalid) as caught:
        repo(table).query_page(tenant_id="acme", key_condition=Key("pk").eq("TENANT#acme"), limit=limit)
    assert (caught.value.code, caught.value.message) == ("invalid_limit", "limit must be between 1 and 100")
    assert table.requests == []


def test_a_cursor_is_refused_by_another_table_index_or_key_value() -> None:
    # Given a cursor of the emails of tenant acme's partition
    key = {"pk": "TENANT#acme", "sk": "EMAIL#e7"}
    condition = Key("pk").eq("TENANT#acme")
    cursor = repo(Table()).cursor_at("acme", key, index=None, key_condition=condition)
    # When it is replayed on another table, another index or another key value
    others = [
        (DynamoRepository("Contacts", Table()), None, condition),  # type: ignore[arg-type]
        (repo(Table()), "gsi1", condition),
        (repo(Table()), None, Key("pk").eq("TENANT#acme2")),
    ]
    # Then each refuses it (400 invalid_cursor), and the same listing takes it
    for other, index, other_condition in others:
        with pytest.raises(Invalid) as caught:
            other.query_page(tenant_id="acme", key_condition=other_condition, cursor=cursor, index=index)
        assert caught.value.code == "invalid_cursor"
    table = Table()
    repo(table).query_page(tenant_id="acme", key_condition=condition, cursor=cursor)
    assert table.requests[0][1]["ExclusiveStartKey"] == key


def test_a_filter_is_sent_only_when_given() -> None:
    # Given a listing of a tenant's emails that leaves out deleted ones
    table = Table()
    condition = Key("pk").eq("TENANT#acme")
    deleted = Attr("deleted").eq(False)
    # When a page is read with the filter, then without
    repo(table).query_page(tenant_id="acme", key_condition=condition, filter_expression=deleted)
    repo(table).query_page(tenant_id="acme", key_condition=condition)
    # Then the first query carries it as its FilterExpression, the second has none
    (_, filtered), (_, plain) = table.requests
    assert filtered["FilterExpression"] is deleted
    assert "FilterExpression" not in plain


def test_a_page_answered_without_items_is_an_empty_last_page() -> None:
    # Given DynamoDB answering a query with a count and no `Items` (Query API reference: Items is
    # left out when nothing is projected, e.g. Select COUNT)
    table = Table(page={"Count": 0, "ScannedCount": 0})
    # When a page is read, Then it is empty and the listing is over
    page = repo(table).query_page(tenant_id="acme", key_condition=Key("pk").eq("TENANT#acme"))
    assert page == ([], None)


def test_a_cursor_of_one_index_is_refused_by_another_index() -> None:
    # Given a cursor of the listing by index gsi1
    condition = Key("gsi1pk").eq("TENANT#acme")
    key = {"pk": "TENANT#acme", "sk": "EMAIL#e7", "gsi1pk": "TENANT#acme", "gsi1sk": "2026-01-02"}
    cursor = repo(Table()).cursor_at("acme", key, index="gsi1", key_condition=condition)
    # When it is replayed on index gsi2 with the same key condition, Then 400 invalid_cursor
    table = Table()
    with pytest.raises(Invalid) as caught:
        repo(table).query_page(tenant_id="acme", key_condition=condition, cursor=cursor, index="gsi2")
    assert caught.value.code == "invalid_cursor"
    assert table.requests == []


def test_no_cursor_is_made_for_a_condition_that_is_not_a_key_condition() -> None:
    # Given a condition on a plain attribute, which DynamoDB cannot take as a KeyConditionExpression
    not_a_key = Attr("pk").eq("TENANT#acme")
    # When a page filler asks for a cursor of that listing, Then boto3's error, and no cursor
    with pytest.raises(DynamoDBNeedsKeyConditionError):
        repo(Table()).cursor_at(
            "acme", {"pk": "TENANT#acme", "sk": "EMAIL#e7"}, index=None, key_condition=not_a_key
        )


# Cursors of two listings as the code deployed today issues them (signing key b"k" * 64, table
# Emails, tenant acme): the table's partition from EMAIL# on, and an account's emails by gsi1.
ISSUED_BY_PARTITION = (
    "AbYcSR91dzo4NU3zD82kUkFqlxymKgkIrF-Wzo4Yjzm6eyJwayI6eyJTIjoiVEVOQU5UI2FjbWUifSwic2siOnsiUyI6IkVN"
    "QUlMI2U3In19"
)
ISSUED_BY_INDEX = (
    "ARXwVdScV4_TnFUU-DcKCfIcJnxliT94QVjV_F1UkjPieyJnc2kxcGsiOnsiUyI6IlRFTkFOVCNhY21lI0FDQyNhY2NfMSJ9"
    "LCJnc2kxc2siOnsiUyI6IjIwMjYtMDEtMDIifSwicGsiOnsiUyI6IlRFTkFOVCNhY21lIn0sInNrIjp7IlMiOiJFTUFJTCNl"
    "NyJ9fQ"
)


@pytest.mark.parametrize(
    ("cursor", "index", "condition", "key"),
    [
        (
            ISSUED_BY_PARTITION,
            None,
            Key("pk").eq("TENANT#acme") & Key("sk").begins_with("EMAIL#"),
            {"pk": "TENANT#acme", "sk": "EMAIL#e7"},
        ),
        (
            ISSUED_BY_INDEX,
            "gsi1",
            Key("gsi1pk").eq("TENANT#acme#ACC#acc_1"),
            {
                "pk": "TENANT#acme",
                "sk": "EMAIL#e7",
                "gsi1pk": "TENANT#acme#ACC#acc_1",
                "gsi1sk": "2026-01-02",
            },
        ),
    ],
    ids=["partition", "index"],
)
def test_a_listing_cursor_issued_before_a_deploy_is_still_accepted_and_issued_alike(
    cursor: str, index: str | None, condition: Any, key: dict[str, str]
) -> None:
    # Given a cursor a client got from the previous deployment (same signing key)
    table = Table()
    # When it comes back to the same listing
    repo(table).query_page(tenant_id="acme", key_condition=condition, cursor=cursor, index=index)
    # Then the listing resumes after the same key, and the same item makes the same cursor: what
    # a cursor is bound to (table, index, key condition) is spelled as before
    assert table.requests[0][1]["ExclusiveStartKey"] == key
    assert repo(Table()).cursor_at("acme", key, index=index, key_condition=condition) == cursor
