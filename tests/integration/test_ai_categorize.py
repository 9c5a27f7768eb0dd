"""Categorizing every email (issue 14 points 1, 3, 7) in-process on moto: mail stored by the real
ingest, `email.received` put on the template's bus, the CategorizeQueue drained into the real
categorize function; corrections and the `/ai/*` routes through the api function."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailbridge.ai import wiring
from mailbridge.ai.service import categorize_stored
from mailbridge.bus import DomainEvent, EventPublisher
from tests.events import load_event
from tests.fixtures.aws import BusReader, Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.test_api_emails import ACC_A, TENANT, Seeder, body

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ai"
Invoke = Any


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def with_sender(raw: bytes, sender: str, message_id: str) -> bytes:
    """The fixture with its From and Message-ID replaced (another email from another sender)."""
    raw = re.sub(rb"(?im)^From:[^\r\n]*", b"From: " + sender.encode(), raw, count=1)
    return re.sub(rb"(?im)^Message-ID:[^\r\n]*", b"Message-ID: <" + message_id.encode() + b">", raw, count=1)


def set_ai(invoke_api: Invoke, on: bool, tenant: str = TENANT) -> None:
    response = invoke_api(load_event("api/put-features.json", tenant=tenant, role="admin", body={"ai": on}))
    assert response["statusCode"] == 200, response


def receive(stack: Stack, email_ids: list[str], tenant: str = TENANT) -> None:
    """What the sync engine announces for newly stored mail."""
    EventPublisher(stack.deployed.buses["EventBus"]).publish(
        [
            DomainEvent(
                detail_type="email.received",
                tenant_id=tenant,
                idempotency_key=f"email.received:{email_id}",
                data={"email_id": email_id, "account_id": ACC_A, "direction": "inbound"},
            )
            for email_id in email_ids
        ]
    )


def stored(stack: Stack, email_id: str, tenant: str = TENANT) -> dict[str, Any]:
    item = stack.table("EmailsTable").get_item(Key={"pk": f"TENANT#{tenant}", "sk": f"EMAIL#{email_id}"})
    return dict(item["Item"])


def categorized(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["detail"] for e in events if e["detail-type"] == "email.categorized"]


@pytest.fixture
def consumer(stack: Stack) -> QueueConsumer:
    return QueueConsumer(stack, "categorize", "CategorizeQueue")


def test_new_mail_is_categorized_stored_and_announced(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer, bus_probe: BusReader
) -> None:
    # Given a tenant with the ai flag on and a newsletter, a bounce and a customer question stored
    set_ai(invoke_api, True)
    seed = Seeder(stack)
    ids = {
        "newsletter": seed.add(fixture("newsletter.eml")),
        "notification": seed.add(fixture("bounce.eml")),
        "support": seed.add(fixture("support_question.eml")),
    }
    bus_probe()
    # When the sync engine announces them and the categorize function drains its queue
    receive(stack, list(ids.values()))
    consumer.drain(expect_success=True)
    # Then each email holds its category, the booleans, a confidence and reasons
    for category, email_id in ids.items():
        item = stored(stack, email_id)
        assert item["category"] == category, (category, item.get("reasons"))
        assert item["category_source"] == "model"
        assert 0 < item["confidence"] <= 1
        assert item["reasons"]
    assert stored(stack, ids["newsletter"])["is_bulk"] is True
    assert stored(stack, ids["notification"])["is_automated"] is True
    assert stored(stack, ids["support"])["needs_reply"] is True
    # And each is announced once as email.categorized
    announced = categorized(bus_probe())
    assert sorted((d["data"]["email_id"], d["data"]["category"]) for d in announced) == sorted(
        (email_id, category) for category, email_id in ids.items()
    )


def test_a_replayed_run_announces_nothing_again(
    stack: Stack, invoke_api: Invoke, bus_probe: BusReader
) -> None:
    # Given an email categorized once by the run for its email.received
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(fixture("support_question.eml"))
    deps = wiring.categorize_deps()
    categorize_stored(TENANT, email_id, "categorize:email.received:x", deps)
    assert len(categorized(bus_probe())) == 1
    # When the same run is delivered again (after the idempotency record expired)
    outcome, result = categorize_stored(TENANT, email_id, "categorize:email.received:x", deps)
    # Then nothing is announced again and the stored category stands
    assert outcome.action == "unchanged"
    assert result is not None
    assert result.category == "support"
    assert categorized(bus_probe()) == []


def test_the_consumer_skips_mail_while_the_ai_flag_is_off(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer, bus_probe: BusReader
) -> None:
    # Given a tenant that has not switched ai on
    email_id = Seeder(stack).add(fixture("newsletter.eml"))
    bus_probe()
    # When its new mail is announced and the queue drained
    receive(stack, [email_id])
    consumer.drain(expect_success=True)
    # Then nothing is stored on the email and nothing announced
    assert "category" not in stored(stack, email_id)
    assert categorized(bus_probe()) == []


def patch_category(invoke_api: Invoke, email_id: str, category: str, role: str = "member") -> dict[str, Any]:
    event = load_event("api/patch-email.json", tenant=TENANT, role=role, body={"category": category})
    event["pathParameters"] = {"email_id": email_id}
    event["rawPath"] = f"/emails/{email_id}"
    return invoke_api(event)  # type: ignore[no-any-return]


def test_a_correction_is_stored_and_never_overwritten(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer
) -> None:
    # Given a categorized newsletter
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(fixture("newsletter.eml"))
    receive(stack, [email_id])
    consumer.drain(expect_success=True)
    assert stored(stack, email_id)["category"] == "newsletter"
    # When a user corrects it to marketing
    response = patch_category(invoke_api, email_id, "marketing")
    # Then the email answers and stores the user's category
    assert response["statusCode"] == 200, response
    assert body(response)["category"] == "marketing"
    assert body(response)["category_source"] == "user"
    # And a later categorize run (a backfill, an on-demand call) leaves it as the user set it
    outcome, _ = categorize_stored(TENANT, email_id, "categorize:later", wiring.categorize_deps())
    assert outcome.action == "user_set"
    assert stored(stack, email_id)["category"] == "marketing"
    assert stored(stack, email_id)["category_source"] == "user"


def test_two_corrections_for_a_sender_make_a_rule_that_decides_the_next_email(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer, bus_probe: BusReader
) -> None:
    # Given two support questions from one sender, categorized as support
    set_ai(invoke_api, True)
    seed = Seeder(stack)
    sender = "Priya <priya@bigcustomer.example>"
    raw = fixture("support_question.eml")
    first = seed.add(with_sender(raw, sender, "c1@bigcustomer.example"))
    second = seed.add(with_sender(raw, sender, "c2@bigcustomer.example"))
    receive(stack, [first, second])
    consumer.drain(expect_success=True)
    assert stored(stack, first)["category"] == "support"
    # When the user corrects both to sales
    for email_id in (first, second):
        assert patch_category(invoke_api, email_id, "sales")["statusCode"] == 200
    # Then the tenant has a rule for that address, listed at GET /ai/rules
    rules = body(invoke_api(load_event("api/ai-list-rules.json", tenant=TENANT, role="viewer")))["items"]
    address_rules = [r for r in rules if r["kind"] == "address"]
    assert [(r["value"], r["category"]) for r in address_rules] == [("priya@bigcustomer.example", "sales")]
    rule_id = address_rules[0]["rule_id"]
    # And the next email from that sender is categorized by the rule, which reasons name
    third = seed.add(with_sender(raw, sender, "c3@bigcustomer.example"))
    bus_probe()
    receive(stack, [third])
    consumer.drain(expect_success=True)
    item = stored(stack, third)
    assert item["category"] == "sales"
    assert item["category_source"] == "rule"
    assert item["reasons"][0] == f"rule:sender:{rule_id}"
    assert [d["data"]["category"] for d in categorized(bus_probe())] == ["sales"]


def test_a_deleted_rule_decides_nothing_more(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer
) -> None:
    # Given a rule made from two corrections
    set_ai(invoke_api, True)
    seed = Seeder(stack)
    sender = "Priya <priya@bigcustomer.example>"
    raw = fixture("support_question.eml")
    for n in (1, 2):
        email_id = seed.add(with_sender(raw, sender, f"d{n}@bigcustomer.example"))
        assert patch_category(invoke_api, email_id, "sales")["statusCode"] == 200
    rules = body(invoke_api(load_event("api/ai-list-rules.json", tenant=TENANT, role="viewer")))["items"]
    assert rules
    # When a member deletes every rule
    for rule in rules:
        event = load_event("api/ai-delete-rule.json", tenant=TENANT, role="member")
        event["pathParameters"] = {"rule_id": rule["rule_id"]}
        event["rawPath"] = f"/ai/rules/{rule['rule_id']}"
        response = invoke_api(event)
        assert response["statusCode"] == 200, response
        assert body(response) == {"rule_id": rule["rule_id"], "deleted": True}
    # Then none is listed and the next email from that sender gets the model's category
    assert body(invoke_api(load_event("api/ai-list-rules.json", tenant=TENANT, role="viewer")))["items"] == []
    third = seed.add(with_sender(raw, sender, "d3@bigcustomer.example"))
    receive(stack, [third])
    consumer.drain(expect_success=True)
    assert stored(stack, third)["category"] == "support"


def _categorize_now(invoke_api: Invoke, email_id: str, tenant: str = TENANT) -> dict[str, Any]:
    event = load_event(
        "api/ai-categorize-email.json", tenant=tenant, role="member", body={"email_id": email_id}
    )
    return invoke_api(event)  # type: ignore[no-any-return]


def test_categorize_email_on_demand_stores_and_returns_the_result(stack: Stack, invoke_api: Invoke) -> None:
    # Given a stored bounce and the ai flag on
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(fixture("bounce.eml"))
    # When a member asks to categorize it now
    response = _categorize_now(invoke_api, email_id)
    # Then the answer holds the categorization, stored on the email
    assert response["statusCode"] == 200, response
    data = body(response)
    assert data["email_id"] == email_id
    assert data["category"] == "notification"
    assert data["is_automated"] is True
    assert stored(stack, email_id)["category"] == "notification"
    # And GET /emails/{id} and GET /emails?category= show it
    event = load_event("api/get-email.json", tenant=TENANT, role="viewer")
    event["pathParameters"] = {"email_id": email_id}
    event["rawPath"] = f"/emails/{email_id}"
    email = body(invoke_api(event))
    assert (email["category"], email["is_automated"], email["is_spam"]) == ("notification", True, False)
    listed = body(
        invoke_api(load_event("api/list-emails.json", tenant=TENANT, query={"category": "notification"}))
    )
    assert [e["email_id"] for e in listed["items"]] == [email_id]
    assert listed["items"][0]["category"] == "notification"
    other = body(invoke_api(load_event("api/list-emails.json", tenant=TENANT, query={"category": "sales"})))
    assert other["items"] == []


def test_ai_routes_answer_404_while_the_flag_is_off(stack: Stack, invoke_api: Invoke) -> None:
    # Given a tenant without the ai flag
    email_id = Seeder(stack).add(fixture("bounce.eml"))
    # When it calls the ai routes or corrects a category
    responses = [
        _categorize_now(invoke_api, email_id),
        invoke_api(load_event("api/ai-list-rules.json", tenant=TENANT, role="viewer")),
        patch_category(invoke_api, email_id, "sales"),
    ]
    # Then each is 404 feature_disabled and nothing is stored
    for response in responses:
        assert response["statusCode"] == 404, response
        assert body(response)["error"]["code"] == "feature_disabled"
    assert "category" not in stored(stack, email_id)


def test_the_eleventh_ai_request_in_a_minute_is_429_with_retry_after(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a tenant with the ai flag on, and the limiter's clock 5 seconds into a minute
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(fixture("bounce.eml"))
    wiring.ai_limits().now = lambda: datetime(2026, 11, 2, 9, 0, 5, tzinfo=UTC)
    # When it makes 11 AI requests within that minute
    statuses = [_categorize_now(invoke_api, email_id)["statusCode"] for _ in range(10)]
    refused = _categorize_now(invoke_api, email_id)
    # Then the first 10 are answered and the 11th is 429 rate_limited with Retry-After
    assert statuses == [200] * 10
    assert refused["statusCode"] == 429, refused
    assert body(refused)["error"]["code"] == "rate_limited"
    assert refused["headers"]["Retry-After"] == "55"
    # And another tenant is not limited by it
    set_ai(invoke_api, True, tenant="globex")
    assert _categorize_now(invoke_api, email_id, tenant="globex")["statusCode"] == 404


def test_an_email_of_another_tenant_is_404(stack: Stack, invoke_api: Invoke) -> None:
    set_ai(invoke_api, True, tenant="globex")
    email_id = Seeder(stack).add(fixture("bounce.eml"))
    response = _categorize_now(invoke_api, email_id, tenant="globex")
    assert response["statusCode"] == 404
    assert body(response)["error"]["code"] == "not_found"
    assert json.dumps(body(response)).find(email_id) == -1


def test_an_automation_rule_fires_on_email_categorized_for_its_category(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_automations_execution import Automations

    # Given ai on and an automation rule on email.categorized for support mail
    set_ai(invoke_api, True)
    auto = Automations(stack, invoke_api, monkeypatch)
    rule = auto.api(
        "automations-create",
        201,
        body={
            "name": "Support mail",
            "trigger": {"event": "email.categorized"},
            "conditions": [{"field": "category", "operator": "equals", "value": "support"}],
            "actions": [{"type": "analytics.track", "metric": "support.mail"}],
        },
    )
    seed = Seeder(stack)
    support, newsletter = seed.add(fixture("support_question.eml")), seed.add(fixture("newsletter.eml"))
    # When both are categorized and the automations function gets the announcements
    receive(stack, [support, newsletter])
    consumer.drain(expect_success=True)
    auto.consumer.drain(expect_success=True)
    # Then the rule ran its action for the support email only
    runs = auto.runs(rule["rule_id"])
    assert sorted(run["status"] for run in runs) == ["skipped", "succeeded"]


def test_a_backfill_categorizes_stored_mail_in_steps_and_reports_progress(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer, bus_probe: BusReader
) -> None:
    # Given 27 stored emails (more than one step's 25), one of them already corrected by a user
    set_ai(invoke_api, True)
    seed = Seeder(stack)
    raw = fixture("newsletter.eml")
    ids = [
        seed.add(with_sender(raw, f"News <news{n}@letters.example>", f"n{n}@letters.example"))
        for n in range(27)
    ]
    assert patch_category(invoke_api, ids[0], "personal")["statusCode"] == 200
    bus_probe()
    # When a member starts a backfill and the categorize function drains its queue
    response = invoke_api(load_event("api/ai-start-backfill.json", tenant=TENANT, role="member"))
    assert response["statusCode"] == 202, response
    job = body(response)
    assert (job["status"], job["steps"]) == ("running", 0)
    results = consumer.drain(expect_success=True)
    # Then it took two queued steps (plus none over everything), and the job says it is done
    assert len(results) == 2
    event = load_event("api/ai-get-backfill.json", tenant=TENANT, role="viewer")
    event["pathParameters"] = {"job_id": job["job_id"]}
    event["rawPath"] = f"/ai/categorize/backfill/{job['job_id']}"
    progress = body(invoke_api(event))
    assert {k: progress[k] for k in ("status", "steps", "processed", "categorized", "skipped")} == {
        "status": "done",
        "steps": 2,
        "processed": 27,
        "categorized": 26,
        "skipped": 1,
    }
    # And every email holds a category; the user's correction stands
    assert {stored(stack, e)["category"] for e in ids[1:]} == {"newsletter"}
    assert stored(stack, ids[0])["category"] == "personal"
    assert len(categorized(bus_probe())) == 26
    # And a replayed first step does nothing more
    from mailbridge.ai.service import BackfillStep, run_backfill_step

    again = run_backfill_step(
        BackfillStep(tenant_id=TENANT, job_id=job["job_id"], step=0), wiring.categorize_deps()
    )
    assert again.action == "unchanged"
    assert categorized(bus_probe()) == []
