"""Campaign sending through the api function and the outbox function on moto: each audience
contact queued exactly once (a crash in a chunk and its redelivery included), the throttle as
the spread of the scheduled sends, skips counted, and the API's refusals."""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
import pytest

from mailbridge.access import Visibility
from mailbridge.crm.models import Contact
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.links import LinkStore
from tests.events import load_event
from tests.fixtures.accounts import CALLER, seed_account
from tests.fixtures.aws import Stack
from tests.integration.queue_harness import QueueConsumer

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT = "acme"
TEMPLATE: dict[str, Any] = json.loads(load_event("api/templates-create.json")["body"])


class Api:
    def __init__(self, invoke: Invoke) -> None:
        self.invoke = invoke

    def call(
        self,
        name: str,
        status: int,
        *,
        role: str = "member",
        tenant: str = TENANT,
        sub: str | None = None,
        path: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        event = load_event(f"api/{name}.json", tenant=tenant, role=role, sub=sub, body=body)
        event["headers"].pop("idempotency-key", None)
        event["headers"].update(headers or {})
        if path is not None:
            raw = event["routeKey"].split(" ", 1)[1]
            for key, value in path.items():
                raw = raw.replace("{" + key + "}", value)
            event["pathParameters"] = dict(path)
            event["rawPath"] = event["requestContext"]["http"]["path"] = raw
        response = self.invoke(event)
        assert response["statusCode"] == status, response
        return json.loads(response["body"]) if response.get("body") else None


@pytest.fixture
def api(invoke_api: Invoke, stack: Stack) -> Api:
    client = Api(invoke_api)
    for tenant in (TENANT, "globex"):
        client.call("put-features", 200, role="admin", tenant=tenant, body={"campaigns": True})
    return client


@pytest.fixture
def outbox(stack: Stack) -> QueueConsumer:
    return QueueConsumer(stack, "outbox", "OutboxQueue")


def _account(
    stack: Stack,
    tenant: str = TENANT,
    provider: Literal["imap", "gmail"] = "imap",
    *,
    owner: str = CALLER,
    visibility: Visibility | None = None,
    address: str = "alice@example.com",
) -> str:
    env = stack.env("ApiFunction")
    return seed_account(
        env["ACCOUNTS_TABLE"],
        env["DATA_KEY_ID"],
        tenant=tenant,
        provider=provider,
        owner=owner,
        visibility=visibility,
        address=address,
        display_name="Alice Example",
        secrets={"imap_password": "pw"},
    ).account_id


def _contacts(stack: Stack, count: int, tag: str, *, start: int = 0) -> list[str]:
    """`count` contacts tagged `tag`, stored as the CRM API stores them."""
    store = CrmStore(stack.env("ApiFunction")["CRM_TABLE"])
    now = datetime.now(UTC)
    ids = []
    for n in range(start, start + count):
        contact_id = f"ct_{n:012x}{uuid.uuid4().hex[:14]}"
        contact = Contact.model_validate(
            {
                "contact_id": contact_id,
                "name": f"Person {n}",
                "emails": [{"address": f"person{n}@customer.example", "primary": True}],
                "tags": [tag],
                "created_at": now,
                "updated_at": now,
                "created_by": "seed",
                "version": 1,
            }
        )
        store.create_contact(TENANT, contact)
        ids.append(contact_id)
    return ids


def _campaign(
    api: Api, stack: Stack, audience: dict[str, Any], *, throttle: int = 100, account_id: str | None = None
) -> str:
    template_id = api.call("templates-create", 201, body=TEMPLATE)["template_id"]
    campaign = api.call("crm-create-campaign", 201, body={"name": "Spring launch"})
    api.call(
        "crm-patch-campaign",
        200,
        path={"campaign_id": campaign["campaign_id"]},
        body={
            "template_id": template_id,
            "audience": audience,
            "account_id": account_id or _account(stack),
            "throttle_per_hour": throttle,
            "variables": {"offer": "20% off"},
        },
    )
    return str(campaign["campaign_id"])


def _send(api: Api, campaign_id: str, status: int = 202, **kwargs: Any) -> Any:
    return api.call("crm-send-campaign", status, path={"campaign_id": campaign_id}, **kwargs)


def _status(api: Api, campaign_id: str) -> Any:
    return api.call("crm-get-campaign-send-status", 200, role="viewer", path={"campaign_id": campaign_id})


def _campaign_emails(stack: Stack, campaign_id: str) -> list[dict[str, Any]]:
    """The emails linked to the campaign (what its engagement reads), as stored."""
    env = stack.env("ApiFunction")
    links, ids, cursor = LinkStore(env["LINKS_TABLE"]), [], None
    while True:
        page, cursor = links.timeline_page(TENANT, "campaign", campaign_id, cursor=cursor, limit=100)
        ids += [link.email_id for link in page]
        if cursor is None:
            break
    emails = EmailStore(env["EMAILS_TABLE"])
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        found |= emails.batch_get_emails(TENANT, ids[start : start + 100])
    assert len(found) == len(ids)
    return list(found.values())


def _schedules() -> list[str]:
    client, names, token = boto3.client("scheduler"), [], None
    while True:
        kwargs: dict[str, Any] = {"NamePrefix": "send-", "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        page = client.list_schedules(**kwargs)
        names += [s["Name"] for s in page["Schedules"]]
        token = page.get("NextToken")
        if not token:
            return names


def _recipients(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(address for item in items for address in item["envelope_to"])


# ------------------------------------------------------------------------------ exactly once
RECIPIENTS = 250
"""Three chunks of 100 (the last one short) over two and a half hours of the throttle: enough to
cross chunk and hour boundaries. The moto-backed outbox takes about a second per recipient on a
loaded machine, so 1,000 would be a quarter of an hour of the suite."""


def test_a_campaign_of_250_contacts_queues_each_once_spread_by_the_throttle(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given 250 contacts (three chunks of 100) tagged `launch` and a campaign to them at 100 sends an hour
    _contacts(stack, RECIPIENTS, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]}, throttle=100)
    # When it is sent and the outbox function works through its chunks
    started = _send(api, campaign_id)
    outbox.drain(expect_success=True)
    # Then every contact has exactly one email, linked to the campaign, scheduled once
    assert started["state"] == "sending"
    emails = _campaign_emails(stack, campaign_id)
    assert len(emails) == RECIPIENTS
    assert set(_recipients(emails).values()) == {1}
    assert {item["send_status"] for item in emails} == {"scheduled"}
    assert len(set(_schedules())) == RECIPIENTS
    # And the sends are spaced 36 s apart (3600 / 100): no hour holds more than 100
    times = sorted(datetime.fromisoformat(item["send_at"]) for item in emails)
    assert min(b - a for a, b in itertools.pairwise(times)) >= timedelta(seconds=36)
    assert max(sum(1 for t in times if start <= t < start + timedelta(hours=1)) for start in times) == 100
    # And the run is done with every recipient queued, and the campaign too
    status = _status(api, campaign_id)
    assert (status["state"], status["counts"]["queued"], status["counts"]["skipped"]) == (
        "done",
        RECIPIENTS,
        {},
    )
    campaign = api.call("crm-get-campaign", 200, role="viewer", path={"campaign_id": campaign_id})
    assert campaign["status"] == "done"


def test_two_campaigns_from_one_account_share_its_throttle(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given two campaigns of 3 contacts each from the same account, at 100 sends an hour
    account_id = _account(stack)
    campaigns: list[str] = []
    for tag in ("first", "second"):
        _contacts(stack, 3, tag, start=len(campaigns) * 3)
        campaigns.append(_campaign(api, stack, {"tags": [tag]}, throttle=100, account_id=account_id))
    # When both are sent
    for campaign_id in campaigns:
        _send(api, campaign_id)
    outbox.drain(expect_success=True)
    # Then the six sends take six slots 36 s apart, none shared
    times = sorted(
        datetime.fromisoformat(item["send_at"]) for c in campaigns for item in _campaign_emails(stack, c)
    )
    assert len(times) == 6
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(seconds=36)] * 5


class LambdaDied(Exception):
    pass


class Requests:
    """Every AWS request of the clients it is registered on (botocore `before-call`), by
    operation; with `crash_at` = (operation, n) the n-th such request raises LambdaDied instead
    (the function dying there, mid-chunk)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.crash_at: tuple[str, int] | None = None

    def before(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        self.calls[name] += 1
        if self.crash_at == (name, self.calls[name]):
            raise LambdaDied(f"died at {name} #{self.calls[name]}")

    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def requests(stack: Stack) -> Iterator[Requests]:
    from mailbridge import aws

    counter = Requests()
    clients = [*aws.dynamodb_clients(), aws.s3(), aws.sqs(), aws.scheduler(), aws.events()]
    for client in clients:
        client.meta.events.register("before-call", counter.before)
    yield counter
    for client in clients:
        client.meta.events.unregister("before-call", counter.before)


@pytest.mark.parametrize(
    "crash_at",
    [
        ("s3.PutObject", 50),  # before any email of the chunk is stored
        ("scheduler.CreateSchedule", 30),  # every email stored, some scheduled, none marked queued
        ("dynamodb.BatchWriteItem", 8),  # inside the chunk's writes
    ],
)
def test_a_crash_inside_a_chunk_and_its_redelivery_send_no_one_twice(
    api: Api, stack: Stack, outbox: QueueConsumer, requests: Requests, crash_at: tuple[str, int]
) -> None:
    # Given a campaign of 150 contacts (two chunks), and the function dying mid-way through the first
    _contacts(stack, 150, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    _send(api, campaign_id)
    requests.calls.clear()
    requests.crash_at = crash_at
    # When the first chunk crashes, then the same message is delivered again, then the rest runs
    first = outbox.receive()
    assert outbox.invoke(first)["batchItemFailures"]
    assert requests.calls[crash_at[0]] >= crash_at[1]  # it died there (pooled calls: the others ran)
    requests.crash_at = None
    outbox.invoke(first)
    outbox.drain(expect_success=True)
    # Then each of the 150 contacts got exactly one email and one schedule
    emails = _campaign_emails(stack, campaign_id)
    assert len(emails) == 150
    assert set(_recipients(emails).values()) == {1}
    assert len(_schedules()) == 150
    assert {item["send_status"] for item in emails} == {"scheduled"}
    # And the counts count each once
    status = _status(api, campaign_id)
    assert (status["state"], status["counts"]["queued"]) == ("done", 150)


def test_a_chunk_costs_a_bounded_number_of_requests_per_recipient(
    api: Api, stack: Stack, outbox: QueueConsumer, requests: Requests
) -> None:
    # Given a campaign of 120 contacts (a chunk of 100 and one of 20)
    _contacts(stack, 120, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    _send(api, campaign_id)
    requests.calls.clear()
    # When the outbox function works through both chunks
    outbox.drain(expect_success=True)
    # Then what is left per recipient is its raw message, its schedule and its claim (the
    # conditional write exactly-once rests on); everything else is per chunk
    calls = requests.calls
    assert (calls["s3.PutObject"], calls["scheduler.CreateSchedule"]) == (120, 120)
    per_chunk = requests.total() - calls["s3.PutObject"] - calls["scheduler.CreateSchedule"] - 120
    assert calls["dynamodb.PutItem"] >= 120
    assert per_chunk <= 2 * 40, calls
    assert calls["dynamodb.TransactWriteItems"] <= 2, calls  # the campaign's status, not per email
    assert requests.total() / 120 < 3.6, calls
    assert len(_campaign_emails(stack, campaign_id)) == 120


def test_a_second_send_is_409_while_sending_and_after_done_and_a_replayed_key_is_202(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given a campaign of 3 contacts sent with an Idempotency-Key
    _contacts(stack, 3, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    key = {"idempotency-key": "launch-1"}
    _send(api, campaign_id, headers=key)
    # When it is sent again while its run is queuing: 409, the same key: its status again
    sending = _send(api, campaign_id, 409)
    replay = _send(api, campaign_id, 202, headers=key)
    # And once it is done
    outbox.drain(expect_success=True)
    done = _send(api, campaign_id, 409)
    # Then nothing was queued twice
    assert sending["error"]["code"] == "campaign_sending"
    assert replay["state"] == "sending"
    assert done["error"]["code"] == "campaign_already_sent"
    assert len(_campaign_emails(stack, campaign_id)) == 3


def test_a_paused_campaign_stops_at_the_next_chunk_and_send_resumes_it(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given a campaign of 150 contacts whose first chunk was queued
    _contacts(stack, 150, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    _send(api, campaign_id)
    outbox.invoke(outbox.receive())
    # When it is paused before the second chunk runs
    api.call("crm-patch-campaign", 200, path={"campaign_id": campaign_id}, body={"status": "paused"})
    outbox.drain(expect_success=True)
    paused = _status(api, campaign_id)
    # And sent again
    _send(api, campaign_id)
    outbox.drain(expect_success=True)
    # Then the pause held after 100, and the resumed run finished the other 50, each once
    assert (paused["state"], paused["counts"]["queued"]) == ("paused", 100)
    assert _status(api, campaign_id)["counts"]["queued"] == 150
    emails = _campaign_emails(stack, campaign_id)
    assert len(emails) == 150
    assert set(_recipients(emails).values()) == {1}


# ------------------------------------------------------------------------------ whose mailbox
BEA = "bea-5e6f7a8b"


def test_a_campaign_sends_only_from_a_mailbox_its_caller_may_send_from(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given Bea's private mailbox, one she shares subjects of and one she shares in full, and the
    # caller's campaign from the caller's private mailbox, sent and paused before its first chunk
    private = _account(stack, owner=BEA, visibility=Visibility.PRIVATE, address="bea@example.com")
    subject_only = _account(stack, owner=BEA, visibility=Visibility.SUBJECT, address="bea2@example.com")
    shared = _account(stack, owner=BEA, visibility=Visibility.FULL, address="bea3@example.com")
    _contacts(stack, 2, "launch")
    mine = _campaign(
        api, stack, {"tags": ["launch"]}, account_id=_account(stack, visibility=Visibility.PRIVATE)
    )
    _send(api, mine)
    api.call("crm-patch-campaign", 200, path={"campaign_id": mine}, body={"status": "paused"})
    outbox.drain(expect_success=True)
    bare = api.call("crm-create-campaign", 201, body={"name": "Bare"})["campaign_id"]
    # When the caller names Bea's mailboxes as a campaign's account
    refused = {
        level: api.call("crm-patch-campaign", 422, path={"campaign_id": bare}, body={"account_id": account})[
            "error"
        ]["code"]
        for level, account in (("private", private), ("subject", subject_only))
    }
    created = api.call("crm-create-campaign", 422, body={"name": "Hers", "account_id": private})["error"][
        "code"
    ]
    api.call("crm-patch-campaign", 200, path={"campaign_id": bare}, body={"account_id": shared})
    # And Bea sends (resumes) the caller's campaign from the caller's private mailbox
    resumed = _send(api, mine, 422, sub=BEA)["error"]["code"]
    outbox.drain(expect_success=True)
    # Then each is the 422 of an account the tenant does not have (its id does not leak), sharing
    # in full lets the caller send from Bea's mailbox, and Bea's send resumed nothing
    assert refused == {"private": "unknown_account", "subject": "unknown_account"}
    assert created == "unknown_account"
    assert resumed == "unknown_account"
    assert (_status(api, mine)["state"], _status(api, mine)["counts"]["queued"]) == ("paused", 0)
    # While the caller resumes it
    _send(api, mine)
    outbox.drain(expect_success=True)
    assert _status(api, mine)["counts"]["queued"] == 2


# ------------------------------------------------------------------------------ skips
def test_suppressed_and_missing_contacts_are_skipped_and_counted(
    api: Api, stack: Stack, outbox: QueueConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 4 contacts, one of them on the suppression list, one deleted since it was named
    from mailbridge.campaigns import suppression

    ids = _contacts(stack, 4, "launch")
    api.call("crm-delete-contact", 200, path={"contact_id": ids[3]})
    monkeypatch.setattr(
        suppression,
        "suppressed",
        lambda deps, tenant, addresses: {"person1@customer.example"} & set(addresses),
    )
    campaign_id = _campaign(api, stack, {"contact_ids": ids})
    # When it is sent
    _send(api, campaign_id)
    outbox.drain(expect_success=True)
    # Then the two others get one email each, and the skips are counted by reason
    emails = _campaign_emails(stack, campaign_id)
    assert sorted(_recipients(emails)) == ["person0@customer.example", "person2@customer.example"]
    counts = _status(api, campaign_id)["counts"]
    assert counts["queued"] == 2
    assert counts["skipped"] == {"suppressed": 1, "contact_not_found": 1}


def test_a_contact_in_two_sources_of_the_audience_gets_one_email(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given contacts tagged `a`, and an audience naming tag `a`, tag `b` and one of them by id
    ids = _contacts(stack, 3, "a")
    campaign_id = _campaign(api, stack, {"tags": ["a", "b"], "contact_ids": [ids[0]]})
    # When it is sent
    _send(api, campaign_id)
    outbox.drain(expect_success=True)
    # Then each contact is sent to once, and counted once
    emails = _campaign_emails(stack, campaign_id)
    assert set(_recipients(emails).values()) == {1}
    assert len(emails) == 3
    assert _status(api, campaign_id)["counts"]["queued"] == 3


# ------------------------------------------------------------------------------ refusals
def test_another_tenants_campaign_is_404(api: Api, stack: Stack) -> None:
    # Given acme's campaign
    _contacts(stack, 1, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    # When globex sends it or reads its status
    sent = _send(api, campaign_id, 404, tenant="globex")
    api.call(
        "crm-get-campaign-send-status", 404, role="viewer", tenant="globex", path={"campaign_id": campaign_id}
    )
    # Then it is not found, and nothing runs for acme
    assert sent["error"]["code"] == "campaign_not_found"
    api.call("crm-get-campaign-send-status", 404, role="viewer", path={"campaign_id": campaign_id})


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"audience": {}}, None),
        ({"audience": {"contact_ids": ["ct_1"]}}, None),
        ({"audience": {"tags": ["a", "a"]}}, None),
        ({"audience": {"contact_ids": [f"ct_{n:026x}" for n in range(10_001)]}}, None),
        ({"template_id": "tpl_" + "0" * 20}, "unknown_template"),
        ({"account_id": "acc_" + "0" * 20}, "unknown_account"),
        ({"throttle_per_hour": 0}, None),
        ({"variables": {"contact": "x"}}, None),
        ({"schedule_at": "2026-12-01T09:00:00"}, None),
    ],
)
def test_bad_audience_template_account_or_throttle_is_422(
    api: Api, stack: Stack, body: dict[str, Any], code: str | None
) -> None:
    # Given a draft campaign
    campaign_id = api.call("crm-create-campaign", 201, body={"name": "Spring launch"})["campaign_id"]
    # When it is given a bad value
    answer = api.call("crm-patch-campaign", 422, path={"campaign_id": campaign_id}, body=body)
    # Then it is refused with a 422 (and the code for a reference the tenant does not have)
    if code is not None:
        assert answer["error"]["code"] == code


def test_a_throttle_above_the_providers_ceiling_is_422(api: Api, stack: Stack) -> None:
    # Given a campaign sending from a Gmail account (2,000 a day: a ceiling of 83 an hour)
    campaign_id = api.call("crm-create-campaign", 201, body={"name": "Spring launch"})["campaign_id"]
    body = {"account_id": _account(stack, provider="gmail"), "throttle_per_hour": 84}
    # When its throttle is set above it
    answer = api.call("crm-patch-campaign", 422, path={"campaign_id": campaign_id}, body=body)
    # Then it is refused with the ceiling
    assert (answer["error"]["code"], answer["error"]["details"]) == ("throttle_above_limit", {"max": 83})


def test_an_incomplete_campaign_is_422_and_a_sending_one_cannot_be_changed(
    api: Api, stack: Stack, outbox: QueueConsumer
) -> None:
    # Given a campaign without a template, and a complete one being sent
    bare = api.call("crm-create-campaign", 201, body={"name": "Bare"})["campaign_id"]
    _contacts(stack, 1, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    _send(api, campaign_id)
    # When the first is sent and the second's audience is changed
    incomplete = _send(api, bare, 422)
    changed = api.call(
        "crm-patch-campaign", 409, path={"campaign_id": campaign_id}, body={"audience": {"tags": ["x"]}}
    )
    # Then both are refused
    assert incomplete["error"]["code"] == "campaign_incomplete"
    assert incomplete["error"]["details"] == {"missing": ["template_id", "audience", "account_id"]}
    assert changed["error"]["code"] == "campaign_not_editable"


def test_the_email_carries_the_unsubscribe_headers_and_the_campaign_link(
    api: Api, stack: Stack, outbox: QueueConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given unsubscribe headers from the suppression list, and a campaign of one contact
    from mailbridge.campaigns import suppression
    from mailbridge.store.blobs import BlobStore

    url = "<https://api.example.com/u/tok123>"
    monkeypatch.setattr(
        suppression,
        "unsubscribe_headers",
        lambda deps, tenant, campaign_id, address: {
            "List-Unsubscribe": url,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    _contacts(stack, 1, "launch")
    campaign_id = _campaign(api, stack, {"tags": ["launch"]})
    # When it is sent
    _send(api, campaign_id)
    outbox.drain(expect_success=True)
    # Then the stored message carries both headers, and is linked to the campaign
    (item,) = _campaign_emails(stack, campaign_id)
    raw = BlobStore(stack.env("ApiFunction")["MAIL_BUCKET"]).get(str(item["raw_key"]))
    assert f"List-Unsubscribe: {url}".encode() in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw
    assert item["template"]["template_id"].startswith("tpl_")
