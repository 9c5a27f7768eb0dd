"""Smart replies and the assist panel (issue 14 point 6) in-process on moto, through the api
handler and the sample events: reply suggestions grounded in the CRM, summaries, drafts, next
best actions and applying them, the role and tenant checks, and Bedrock (the local Converse
double) answering or falling back."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest

from local.bedrock import BedrockDouble
from mailbridge.ai import wiring
from mailbridge.ai.assist import action_id_for
from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import Stack
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import SyncHarness, message
from tests.integration.test_ai_categorize import set_ai
from tests.integration.test_api_crm_tasks import Client
from tests.integration.test_api_emails import OTHER, TENANT, Seeder, api, body, rfc

Invoke = Any

QUESTION = rfc(
    msgid="q-1@northwind.example",
    sender="Kim Lee <kim.lee@northwind.example>",
    to="sam@shop.test",
    subject="Seats for next year",
    date="Tue, 03 Mar 2026 10:00:00 +0000",
    text=(
        "Hello Sam,\r\n\r\nCould you send me a quote for 50 more seats before Friday? The board "
        "meets on Monday and the renewal budget is due then.\r\n\r\nThanks,\r\nKim\r\n"
    ),
)
FOLLOW_UP = rfc(
    msgid="q-2@northwind.example",
    sender="Kim Lee <kim.lee@northwind.example>",
    to="sam@shop.test",
    subject="Re: Seats for next year",
    date="Wed, 04 Mar 2026 09:00:00 +0000",
    in_reply_to="q-1@northwind.example",
    references="q-1@northwind.example",
    text=(
        "Hi Sam,\r\n\r\nI am disappointed that the quote has still not arrived. The board needs "
        "the seats quote for the renewal by Monday.\r\n\r\nKim\r\n"
    ),
)


@pytest.fixture(scope="module")
def double() -> Iterator[BedrockDouble]:
    with BedrockDouble() as running:
        yield running


@pytest.fixture
def bedrock(stack: Stack, double: BedrockDouble, monkeypatch: pytest.MonkeyPatch) -> BedrockDouble:
    double.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", double.base_url)
    wiring.reset()
    return double


@pytest.fixture
def crm(invoke_api: Invoke) -> Client:
    set_ai(invoke_api, True)
    return Client(invoke_api)


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    wiring.reset()
    yield
    wiring.reset()


def assist(
    invoke_api: Invoke, name: str, payload: dict[str, Any], *, role: str = "member", tenant: str = TENANT
) -> Any:
    return invoke_api(api(name, role=role, tenant=tenant, body=payload))


def ok(response: dict[str, Any], status: int = 200) -> Any:
    assert response["statusCode"] == status, response
    return body(response)


def code(response: dict[str, Any]) -> tuple[int, str]:
    return response["statusCode"], body(response)["error"]["code"]


def northwind(crm: Client) -> tuple[str, str, str]:
    """Kim Lee of Northwind with an open deal: (contact_id, company_id, deal_id)."""
    company = crm.call("create-company", 201, body={"name": "Northwind", "domains": ["northwind.example"]})
    contact = crm.call(
        "create-contact",
        201,
        body={
            "name": "Kim Lee",
            "emails": [{"address": "kim.lee@northwind.example"}],
            "company_id": company["company_id"],
        },
    )
    deal = crm.call(
        "create-deal",
        201,
        body={
            "name": "Northwind: 50 seats",
            "contact_ids": [contact["contact_id"]],
            "company_id": company["company_id"],
        },
    )
    return contact["contact_id"], company["company_id"], deal["deal_id"]


def backdate_deal(stack: Stack, deal_id: str, days: int) -> None:
    """What a deal nobody touched for `days` days looks like in the CRM table."""
    table = boto3.resource("dynamodb").Table(stack.deployed.tables["CrmTable"])
    when = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    table.update_item(
        Key={"pk": f"TENANT#{TENANT}", "sk": f"DEAL#{deal_id}"},
        UpdateExpression="SET updated_at = :t, created_at = :t",
        ExpressionAttributeValues={":t": when},
    )


# ---------------------------------------------------------------------------------- replies


def test_reply_suggestions_answer_the_last_message_with_the_crm_facts(
    stack: Stack, invoke_api: Invoke, crm: Client, bedrock: BedrockDouble
) -> None:
    # Given Kim's contact, company and open deal, and her thread of a question and a complaint
    contact_id, company_id, deal_id = northwind(crm)
    seeder = Seeder(stack)
    first = seeder.add(QUESTION)
    last = seeder.add(FOLLOW_UP)
    # When suggestions are asked for the thread's first email
    answer = ok(assist(invoke_api, "ai-generate-reply", {"email_id": first}))
    # Then they answer the thread's last message: her complaint, with the local templates
    assert answer["email_id"] == last
    assert (answer["intent"], answer["source"], answer["fallback_reason"]) == ("complaint", "local", None)
    assert (answer["contact_id"], answer["company_id"], answer["deal_id"]) == (
        contact_id,
        company_id,
        deal_id,
    )
    suggestions = answer["suggestions"]
    assert len(suggestions) == 3
    assert all(s.startswith("Hi Kim,\n\n") and s.endswith("\n\nBest,") for s in suggestions)
    assert any("Northwind" in s for s in suggestions)
    # And Bedrock (off) was not asked
    assert bedrock.requests == []


def test_reply_suggestions_by_intent_and_tone_from_the_email_itself(
    stack: Stack, invoke_api: Invoke, crm: Client
) -> None:
    # Given Kim's deal and her pricing question (a thread of one)
    northwind(crm)
    email_id = Seeder(stack).add(QUESTION)
    # When brief suggestions are asked
    answer = ok(assist(invoke_api, "ai-generate-reply", {"email_id": email_id, "tone": "brief"}))
    # Then the pricing templates answer, naming the open deal, without greeting or closing
    assert answer["intent"] == "pricing"
    assert (
        answer["suggestions"][0] == "Thanks for asking. I'll send you a quote for Northwind: 50 seats today."
    )
    assert not any(s.startswith("Hi ") for s in answer["suggestions"])


def test_bedrock_answers_replies_and_drafts_and_a_bad_answer_falls_back(
    stack: Stack, invoke_api: Invoke, crm: Client, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on for the tenant, Kim's deal and her question
    response = invoke_api(api("ai-put-bedrock", role="admin", body={"enabled": True}))
    assert response["statusCode"] == 200, response
    contact_id, _, _ = northwind(crm)
    email_id = Seeder(stack).add(QUESTION)
    # When the model answers three suggestions
    bedrock.script({"suggestions": ["One.", "Two.", "Three."]})
    answer = ok(assist(invoke_api, "ai-generate-reply", {"email_id": email_id}))
    # Then they are the answer, marked bedrock, and the prompt held no address
    assert (answer["suggestions"], answer["source"], answer["fallback_reason"]) == (
        ["One.", "Two.", "Three."],
        "bedrock",
        None,
    )
    assert "TASK: reply" in bedrock.requests[-1].text
    assert "kim.lee@northwind.example" not in bedrock.requests[-1].text
    # When the same suggestions are asked again, then the cached answer comes, without a call
    calls = len(bedrock.requests)
    again = ok(assist(invoke_api, "ai-generate-reply", {"email_id": email_id}))
    assert (again["suggestions"], again["source"]) == (["One.", "Two.", "Three."], "bedrock")
    assert len(bedrock.requests) == calls
    # When the model answers text instead of calling the tool (a formal tone: a new prompt)
    bedrock.script("Sure! Here are some ideas: be nice.")
    fallback = ok(assist(invoke_api, "ai-generate-reply", {"email_id": email_id, "tone": "formal"}))
    # Then the local templates answer, with the reason
    assert (fallback["source"], fallback["fallback_reason"]) == ("local", "fallback:invalid_answer")
    assert fallback["suggestions"][0].startswith("Dear Kim Lee,")
    # When Bedrock is throttled while drafting, then the local draft stands with the reason
    bedrock.fail("ThrottlingException", times=3)
    draft = ok(assist(invoke_api, "ai-assist-draft-email", {"contact_id": contact_id, "goal": "follow_up"}))
    assert (draft["source"], draft["fallback_reason"]) == ("local", "fallback:throttled")
    assert draft["subject"] == "Following up: Northwind: 50 seats"


def test_a_bedrock_draft_is_used_with_the_scrubbed_values_restored_and_its_prompt_holds_none(
    invoke_api: Invoke, crm: Client, bedrock: BedrockDouble
) -> None:
    # Given Bedrock on, and a company whose name carries a phone number
    response = invoke_api(api("ai-put-bedrock", role="admin", body={"enabled": True}))
    assert response["statusCode"] == 200, response
    company = crm.call("create-company", 201, body={"name": "Northwind +44 20 7946 0958"})
    contact = crm.call(
        "create-contact",
        201,
        body={
            "name": "Kim Lee",
            "emails": [{"address": "kim@northwind.example"}],
            "company_id": company["company_id"],
        },
    )
    # When the model answers a draft naming the placeholder it was given, and one it was not
    bedrock.script({"subject": "Catching up", "text": "Hi Kim, how are things at [PHONE_1]? [PHONE_7]"})
    draft = ok(
        assist(invoke_api, "ai-assist-draft-email", {"contact_id": contact["contact_id"], "goal": "check_in"})
    )
    # Then the draft is the model's, to the contact, with the scrubbed number put back (only it)
    assert (draft["subject"], draft["text"], draft["source"]) == (
        "Catching up",
        "Hi Kim, how are things at +44 20 7946 0958? [PHONE_7]",
        "bedrock",
    )
    assert draft["to"] == [{"address": "kim@northwind.example", "name": "Kim Lee"}]
    # And the prompt named the company without its number, and asked for the answer through a tool
    request = bedrock.requests[-1]
    prompt = request.text
    assert "Company: Northwind [PHONE_1]" in prompt
    assert request.body["toolConfig"]["toolChoice"] == {"tool": {"name": "DraftAnswer"}}
    assert "7946" not in prompt
    assert "kim@northwind.example" not in prompt


# ---------------------------------------------------------------------------------- summaries and drafts


def test_thread_summary_picks_sentences_as_written_and_lists_key_facts(
    stack: Stack, invoke_api: Invoke, crm: Client
) -> None:
    # Given Kim's deal and her two-message thread, and an overdue task on her contact
    contact_id, _, deal_id = northwind(crm)
    seeder = Seeder(stack)
    first = seeder.add(QUESTION)
    last = seeder.add(FOLLOW_UP)
    crm.task(
        contact_id=contact_id,
        title="Send Kim the quote",
        due=(datetime.now(UTC) - timedelta(days=2)).isoformat(),
    )
    thread_id = ok(invoke_api(api("get-email", path={"email_id": first})))["thread_id"]
    # When the thread is summarized
    summary = ok(assist(invoke_api, "ai-assist-summarize", {"thread_id": thread_id}))
    # Then each sentence is one of the messages' own, with its source, and the facts are the CRM's
    texts = {first: QUESTION.decode(), last: FOLLOW_UP.decode()}
    assert 1 <= len(summary["sentences"]) <= 3
    for sentence in summary["sentences"]:
        assert sentence["text"] in texts[sentence["source_id"]].replace("\r\n", " ")
    assert any("quote" in s["text"] for s in summary["sentences"])
    facts = summary["key_facts"]
    assert facts["last_contact_at"].startswith("2026-03-04T09:00:00")
    assert [d["deal_id"] for d in facts["open_deals"]] == [deal_id]
    assert [t["title"] for t in facts["overdue_tasks"]] == ["Send Kim the quote"]
    assert summary["source"] == "local"


def test_deal_summary_reads_the_timeline_and_the_stage(stack: Stack, invoke_api: Invoke, crm: Client) -> None:
    # Given Kim's deal with her question linked to it
    _, _, deal_id = northwind(crm)
    email_id = Seeder(stack).add(QUESTION)
    link = invoke_api(
        api("links-create", path={"email_id": email_id}, body={"kind": "deal", "record_id": deal_id})
    )
    assert link["statusCode"] == 201, link
    # When the deal is summarized
    summary = ok(assist(invoke_api, "ai-assist-summarize", {"deal_id": deal_id}))
    # Then the summary comes from the linked email and the stage is the pipeline's first
    assert summary["sentences"]
    assert {s["source_id"] for s in summary["sentences"]} == {email_id}
    assert summary["key_facts"]["stage"] == crm.call("get-deal", path={"deal_id": deal_id})["stage"]
    assert summary["key_facts"]["last_contact_at"].startswith("2026-03-03T10:00:00")


def test_summarize_takes_exactly_one_record(invoke_api: Invoke, crm: Client) -> None:
    contact_id, _, deal_id = northwind(crm)
    # When two records (or none) are named, then the request is refused as invalid
    for payload in ({"contact_id": contact_id, "deal_id": deal_id}, {}):
        response = assist(invoke_api, "ai-assist-summarize", payload)
        assert response["statusCode"] in (400, 422), response


def test_draft_email_fills_the_goal_template_from_the_crm(invoke_api: Invoke, crm: Client) -> None:
    # Given Kim's contact and open deal
    contact_id, _, _ = northwind(crm)
    # When a meeting request is drafted
    draft = ok(
        assist(invoke_api, "ai-assist-draft-email", {"contact_id": contact_id, "goal": "meeting_request"})
    )
    # Then it is addressed to her, names the deal, and is local
    assert draft["to"] == [{"address": "kim.lee@northwind.example", "name": "Kim Lee"}]
    assert draft["subject"] == "Time for a short call about Northwind: 50 seats?"
    assert draft["text"].startswith("Hi Kim,\n\n")
    assert "Northwind: 50 seats" in draft["text"]
    assert draft["source"] == "local"
    # And an unknown goal is refused
    bad = assist(invoke_api, "ai-assist-draft-email", {"contact_id": contact_id, "goal": "sell_harder"})
    assert bad["statusCode"] in (400, 422), bad


# ---------------------------------------------------------------------------------- next best actions


def test_a_stale_deal_suggests_a_task_and_apply_creates_it_once(
    stack: Stack, invoke_api: Invoke, crm: Client
) -> None:
    # Given Kim's deal, untouched for 20 days
    contact_id, _, deal_id = northwind(crm)
    backdate_deal(stack, deal_id, 20)
    # When the next best actions of the deal are asked
    answer = ok(assist(invoke_api, "ai-assist-nba", {"deal_id": deal_id}))
    # Then one is a create_task for the deal, with its reason
    [action] = [a for a in answer["actions"] if a["type"] == "create_task"]
    assert action["payload"]["deal_id"] == deal_id
    assert action["payload"]["contact_id"] == contact_id
    assert "20 days" in action["reason"]
    # When it is applied, twice
    first = ok(assist(invoke_api, "ai-assist-apply", {"action": action}))
    again = ok(assist(invoke_api, "ai-assist-apply", {"action": action}))
    # Then one task exists, as GET /crm/tasks/{id} shows, and the repeat says it was replayed
    assert (first["type"], first["replayed"], again["replayed"]) == ("create_task", False, True)
    assert again["result_id"] == first["result_id"]
    task = crm.call("get-task", path={"task_id": first["result_id"]})
    assert (task["deal_id"], task["priority"], task["status"]) == (deal_id, "high", "open")
    assert len(crm.call("list-tasks", query={"deal_id": deal_id})["items"]) == 1
    # When the same action_id comes with another payload, then it is a conflict
    edited = {**action, "payload": {**action["payload"], "title": "Something else"}}
    assert code(assist(invoke_api, "ai-assist-apply", {"action": edited})) == (409, "action_id_reused")


def test_a_fresh_deal_suggests_no_task(invoke_api: Invoke, crm: Client) -> None:
    _, _, deal_id = northwind(crm)
    answer = ok(assist(invoke_api, "ai-assist-nba", {"deal_id": deal_id}))
    assert [a for a in answer["actions"] if a["type"] == "create_task"] == []


def test_contact_actions_unanswered_mail_overdue_task_and_close_dates(
    stack: Stack, invoke_api: Invoke, crm: Client
) -> None:
    # Given Kim's unanswered question linked to her contact, an overdue task, and her deal's
    # close date gone by
    contact_id, _, deal_id = northwind(crm)
    email_id = Seeder(stack).add(QUESTION)
    link = invoke_api(
        api("links-create", path={"email_id": email_id}, body={"kind": "contact", "record_id": contact_id})
    )
    assert link["statusCode"] == 201, link
    crm.task(contact_id=contact_id, title="Call Kim", due=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    past = (date.today() - timedelta(days=3)).isoformat()
    crm.call("patch-deal", path={"deal_id": deal_id}, body={"close_date": past})
    # When the contact's next best actions are asked
    actions = ok(assist(invoke_api, "ai-assist-nba", {"contact_id": contact_id}))["actions"]
    by_type = {a["type"]: a for a in actions}
    # Then a reply to her email, a meeting to settle the task and a new close date are suggested
    reply = by_type["send_email"]["payload"]
    assert reply["reply_to_email_id"] == email_id
    assert reply["to"] == [{"address": "kim.lee@northwind.example", "name": "Kim Lee"}]
    assert reply["subject"] == "Re: Seats for next year"
    assert by_type["schedule_meeting"]["payload"]["title"] == "Call Kim"
    assert by_type["update_deal"]["payload"]["deal_id"] == deal_id
    # When the meeting and the deal update are applied
    meeting = ok(assist(invoke_api, "ai-assist-apply", {"action": by_type["schedule_meeting"]}))
    updated = ok(assist(invoke_api, "ai-assist-apply", {"action": by_type["update_deal"]}))
    # Then the event exists, linked to her, and the deal's close date moved ahead
    event = ok(invoke_api(api("calendar-get-event", path={"event_id": meeting["result_id"]})))
    assert event["contact_ids"] == [contact_id]
    deal = crm.call("get-deal", path={"deal_id": deal_id})
    assert deal["close_date"] == updated["result"]["close_date"] > date.today().isoformat()
    # And a send without a sending account is refused with the reason
    unsent = {**by_type["send_email"], "payload": {**reply, "account_id": None}}
    assert code(assist(invoke_api, "ai-assist-apply", {"action": unsent})) == (400, "account_required")


# ---------------------------------------------------------------------------------- checks


def test_viewers_cannot_apply_and_other_tenants_ids_are_not_found(
    stack: Stack, invoke_api: Invoke, crm: Client
) -> None:
    # Given Kim's records and email in one tenant, and another tenant with ai on
    contact_id, _, deal_id = northwind(crm)
    email_id = Seeder(stack).add(QUESTION)
    backdate_deal(stack, deal_id, 20)
    [action] = [
        a
        for a in ok(assist(invoke_api, "ai-assist-nba", {"deal_id": deal_id}))["actions"]
        if a["type"] == "create_task"
    ]
    set_ai(invoke_api, True, tenant=OTHER)
    # When a viewer applies the action, then it is 403 and no task exists
    assert code(assist(invoke_api, "ai-assist-apply", {"action": action}, role="viewer")) == (
        403,
        "role_required",
    )
    assert crm.call("list-tasks", query={"deal_id": deal_id})["items"] == []
    # When the other tenant names these ids, then each is 404
    for name, payload, expected in (
        ("ai-generate-reply", {"email_id": email_id}, "not_found"),
        ("ai-assist-summarize", {"deal_id": deal_id}, "deal_not_found"),
        ("ai-assist-draft-email", {"contact_id": contact_id, "goal": "check_in"}, "contact_not_found"),
        ("ai-assist-nba", {"contact_id": contact_id}, "contact_not_found"),
    ):
        assert code(assist(invoke_api, name, payload, tenant=OTHER)) == (404, expected), name
    # And applying the action there cannot reach this tenant's deal
    assert code(assist(invoke_api, "ai-assist-apply", {"action": action}, tenant=OTHER)) == (
        400,
        "unknown_contact",
    )


def test_every_assist_route_is_off_with_the_ai_flag_and_counts_towards_the_limit(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a tenant whose ai flag is off
    requests: list[tuple[str, dict[str, Any]]] = [
        ("ai-generate-reply", {"email_id": "em_" + "0" * 26}),
        ("ai-assist-summarize", {"deal_id": "dl_" + "0" * 26}),
        ("ai-assist-draft-email", {"contact_id": "ct_" + "0" * 26, "goal": "intro"}),
        ("ai-assist-nba", {"deal_id": "dl_" + "0" * 26}),
        ("ai-assist-apply", {"action": {}}),
    ]
    # Then every route answers 404 feature_disabled, before any check of the body
    for name, payload in requests:
        assert code(assist(invoke_api, name, payload)) == (404, "feature_disabled"), name
    # When it is switched on and 10 requests were made this minute (the limiter's clock held
    # inside one minute, so no run straddles two windows)
    set_ai(invoke_api, True)
    wiring.ai_limits().now = lambda: datetime(2026, 11, 2, 9, 0, 5, tzinfo=UTC)
    for _ in range(10):
        assert assist(invoke_api, "ai-assist-nba", {"deal_id": "dl_" + "0" * 26})["statusCode"] == 404
    # Then the 11th is 429 with Retry-After
    limited = assist(invoke_api, "ai-assist-summarize", {"deal_id": "dl_" + "0" * 26})
    assert code(limited) == (429, "rate_limited")
    assert int(limited["headers"]["Retry-After"]) >= 1


# ---------------------------------------------------------------------------------- send_email


@pytest.mark.dovecot
def test_a_send_email_action_with_a_sending_account_is_queued_and_sent_once(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> None:
    # Given a connected, synced mailbox that sends through the SMTP sink, and the ai flag on
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    h.server.append(h.user, "INBOX", message("Renewal quote", msgid="orig-1@customer.example"))
    smtp = {"host": smtp_sink.host, "port": smtp_sink.plain_port, "security": "none"}
    status, connected = h.connect(smtp={**smtp, "username": SINK_USER, "password": SINK_PASSWORD})
    assert status == 201, connected
    h.drain()
    set_ai(invoke_api, True)
    original = next(e["email_id"] for e in h.emails() if e["message_id"] == "orig-1@customer.example")
    action = {
        "action_id": action_id_for("unanswered", original),
        "type": "send_email",
        "payload": {
            "account_id": h.account_id,
            "to": [{"address": "carol@customer.example", "name": "Carol"}],
            "subject": "Re: Renewal quote",
            "text": "Hi Carol,\n\nThanks for your message.\n\nBest,",
            "reply_to_email_id": original,
        },
    }
    # When it is applied, twice, and the outbox runs
    first = ok(assist(invoke_api, "ai-assist-apply", {"action": action}))
    again = ok(assist(invoke_api, "ai-assist-apply", {"action": action}))
    QueueConsumer(stack, "outbox", "OutboxQueue").drain()
    # Then one message reached the SMTP server, as a reply to the original
    assert (first["replayed"], again["replayed"], again["result_id"]) == (False, True, first["result_id"])
    assert first["result"]["status"] == "queued"
    assert len(smtp_sink.messages) == 1
    parsed = email.message_from_bytes(smtp_sink.messages[0].raw, policy=email.policy.default)
    assert parsed["Subject"] == "Re: Renewal quote"
    assert parsed["In-Reply-To"] == "<orig-1@customer.example>"
    assert smtp_sink.messages[0].rcpt_tos == ["carol@customer.example"]


def test_bad_bodies_are_a_4xx_with_a_code_never_a_5xx(invoke_api: Invoke, crm: Client) -> None:
    # Given the ai flag on and a real deal to name
    _, _, deal_id = northwind(crm)
    task = {"title": "x"}
    bad: list[tuple[str, dict[str, Any]]] = [
        ("ai-generate-reply", {"email_id": "em_" + "0" * 26, "tone": "angry"}),
        ("ai-generate-reply", {"email_id": "em_1\n"}),
        ("ai-assist-summarize", {"thread_id": "th_nope"}),
        ("ai-assist-summarize", {"thread_id": "th_" + "0" * 24}),
        ("ai-assist-nba", {"contact_id": None, "deal_id": None}),
        ("ai-assist-draft-email", {"contact_id": "ct_" + "0" * 26, "goal": "intro", "extra": 1}),
        ("ai-assist-apply", {"action": {"action_id": "act_1", "type": "create_task", "payload": task}}),
        (
            "ai-assist-apply",
            {"action": {"action_id": "act_" + "1" * 24, "type": "delete_all", "payload": task}},
        ),
        (
            "ai-assist-apply",
            {"action": {"action_id": "act_" + "1" * 24, "type": "create_task", "payload": {}}},
        ),
        (
            "ai-assist-apply",
            {
                "action": {
                    "action_id": "act_" + "2" * 24,
                    "type": "update_deal",
                    "payload": {"deal_id": deal_id, "changes": {}},
                }
            },
        ),
        (
            "ai-assist-apply",
            {
                "action": {
                    "action_id": "act_" + "3" * 24,
                    "type": "update_deal",
                    "payload": {"deal_id": deal_id, "changes": {"stage": "no-such-stage"}},
                }
            },
        ),
        (
            "ai-assist-apply",
            {
                "action": {
                    "action_id": "act_" + "4" * 24,
                    "type": "schedule_meeting",
                    "payload": {
                        "title": "x",
                        "start": {"date_time": "2026-12-01T10:00:00", "time_zone": "UTC"},
                        "end": {"date_time": "2026-12-01T09:00:00", "time_zone": "UTC"},
                    },
                }
            },
        ),
        (
            "ai-assist-apply",
            {
                "action": {
                    "action_id": "act_" + "5" * 24,
                    "type": "send_email",
                    "payload": {
                        "account_id": "acc_" + "0" * 20,
                        "to": [{"address": "a@b.example"}],
                        "text": "x",
                    },
                }
            },
        ),
    ]
    # When each is sent, then each answer is a 4xx with a machine-readable code
    for name, payload in bad:
        response = assist(invoke_api, name, payload)
        assert 400 <= response["statusCode"] < 500, (name, payload, response)
        assert body(response)["error"]["code"], (name, payload)
