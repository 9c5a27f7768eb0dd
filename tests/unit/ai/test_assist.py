"""Smart replies and the assist panel, the plain-Python parts: intent detection, the reply and
draft templates, the SumBasic summary, the next-best-action rules and applying an action once per
`action_id` (the integration tests apply each type through the real services)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from mailbridge.ai import assist
from mailbridge.ai.assist import (
    STALE_AFTER_DAYS,
    ApplyRequest,
    AssistDeps,
    action_id_for,
)
from mailbridge.ai.intent import Grounding, detect_intents, draft, primary_intent, reply_suggestions
from mailbridge.ai.summary import summarize
from mailbridge.crm.models import Deal
from mailbridge.errors import Conflict, Forbidden
from mailbridge.tenancy import Role, TenantContext

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday
DEAL_ID = "dl_" + "1" * 26
CONTACT_ID = "ct_" + "2" * 26
EMAIL_ID = "em_" + "3" * 26
CTX = TenantContext(tenant_id="acme", role=Role.MEMBER, subject="alice")


# ---------------------------------------------------------------------------------- intents


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("This is unacceptable, the export is still not working.", "complaint"),
        ("I'd like a refund for last month.", "complaint"),
        ("Could we schedule a call next week?", "meeting_request"),
        ("Are you available on Thursday afternoon", "meeting_request"),
        ("What would 50 seats cost per year?", "pricing"),
        ("Please send me a quote", "pricing"),
        ("How do I export my contacts?", "question"),
        ("Where is the invoice", "question"),
        ("Thank you so much for the help!", "thanks"),
        ("See the attached notes from today", "other"),
        ("", "other"),
    ],
)
def test_primary_intent(text: str, intent: str) -> None:
    assert primary_intent(text) == intent


def test_every_intent_found_is_listed_strongest_first() -> None:
    # Given a complaint that also asks a pricing question and says thanks
    text = "I'm disappointed by the new pricing. Why did it change? Thanks, Kim"
    # Then all four are found, the complaint first
    assert detect_intents(text) == ["complaint", "pricing", "question", "thanks"]


# ---------------------------------------------------------------------------------- templates

KIM = Grounding(
    first_name="Kim",
    full_name="Kim Lee",
    company="Northwind",
    deal="Northwind: 50 seats",
    stage="proposal",
    close_date="2026-12-31",
    subject="Seats",
)


def test_replies_by_intent_are_filled_from_the_crm_in_the_tone_asked() -> None:
    friendly = reply_suggestions("pricing", "sales", "friendly", KIM)
    formal = reply_suggestions("pricing", "sales", "formal", KIM)
    brief = reply_suggestions("pricing", "sales", "brief", KIM)
    assert len(friendly) == len(formal) == len(brief) == 3
    assert (
        friendly[0]
        == "Hi Kim,\n\nThanks for asking. I'll send you a quote for Northwind: 50 seats today.\n\nBest,"
    )
    assert formal[1].startswith("Dear Kim Lee,\n\n")
    assert formal[1].endswith("How many seats does Northwind need, and for how long?\n\nKind regards,")
    assert brief[0] == "Thanks for asking. I'll send you a quote for Northwind: 50 seats today."


@pytest.mark.parametrize(
    ("category", "first_words"),
    [
        ("newsletter", "Thanks for the update."),
        ("support", "Thanks for getting in touch."),
        ("sales", "Thanks for your interest."),
        (None, "Thanks for your message."),
    ],
)
def test_without_an_intent_the_category_chooses_the_templates(category: str | None, first_words: str) -> None:
    assert reply_suggestions("other", category, "brief", KIM)[0].startswith(first_words)


def test_unknown_crm_fields_read_naturally_and_values_are_never_templates() -> None:
    # Given nothing known, then the greeting and the deal fall back to plain words
    assert reply_suggestions("pricing", None, "friendly", Grounding())[0].startswith(
        "Hi there,\n\nThanks for asking. I'll send you a quote for your request today."
    )
    # Given a company name that looks like a placeholder, then it is written as it is
    odd = Grounding(first_name="{deal}", company="{first_name} Ltd")
    text = reply_suggestions("thanks", None, "friendly", odd)[1]
    assert text.startswith("Hi {deal},")
    assert "{first_name} Ltd" in text


def test_drafts_by_goal() -> None:
    subject, text = draft("renewal", KIM)
    assert subject == "Your renewal: Northwind: 50 seats"
    assert text.startswith("Hi Kim,\n\nNorthwind: 50 seats comes up for renewal on 2026-12-31.")
    assert text.endswith("\n\nBest,")
    for goal in ("follow_up", "meeting_request", "intro", "check_in", "thank_you", "renewal"):
        subject, text = draft(goal, Grounding())
        assert subject
        assert "{" not in subject + text


# ---------------------------------------------------------------------------------- summaries


def test_sumbasic_picks_the_sentences_of_the_frequent_words_in_text_order() -> None:
    # Given a thread about a quote for seats, with small talk around it
    texts = [
        (
            "Hi Sam,\nThe weather in Leeds was lovely this weekend for sure. We need a quote for 50 seats.",
            "em_1",
        ),
        (
            "Hello,\nThe quote for the seats must reach the board by Monday. Our cat also says hello to you.",
            "em_2",
        ),
        ("Best regards,\nThe quote for seats should include the support plan too.", "em_3"),
    ]
    # When one sentence is picked
    [best] = summarize(texts, limit=1)
    # Then it is the one whose words the texts use most (quote, seats), as written, with its source
    assert (best.text, best.source_id) == ("We need a quote for 50 seats.", "em_1")
    # When three are picked, then the words already covered count less (SumBasic squares their
    # probability): the next picks bring new words, and the answer keeps the texts' order
    picked = summarize(texts, limit=3)
    assert best in picked
    positions = [
        [t for t, _ in texts].index(next(t for t, src in texts if src == s.source_id)) for s in picked
    ]
    assert positions == sorted(positions)
    assert len({s.text for s in picked}) == 3


def test_sumbasic_second_pick_brings_words_the_first_did_not_cover() -> None:
    # Given two sentences saying the same thing and one about something else
    texts = [
        ("The renewal quote covers fifty seats.", "a"),
        ("The renewal quote for fifty seats is attached.", "b"),
        ("The board meeting moved to Monday.", "c"),
    ]
    # When two are picked, then the second is the other subject, not the near-repeat
    assert [s.source_id for s in summarize(texts, limit=2)] == ["a", "c"]


def test_sumbasic_leaves_out_greetings_short_lines_and_repeats() -> None:
    texts = [
        ("Hi Kim,\nOk.\nThe contract renewal is due in May.", "a"),
        ("The contract renewal is due in May.", "b"),
    ]
    assert [s.text for s in summarize(texts, limit=3)] == ["The contract renewal is due in May."]
    assert summarize([("Thanks!", "a")]) == []


# ---------------------------------------------------------------------------------- nba rules


def deal(*, updated_days_ago: float, close_date: date | None = None, stage: str = "proposal") -> Deal:
    updated = NOW - timedelta(days=updated_days_ago)
    return Deal.model_validate(
        {
            "deal_id": DEAL_ID,
            "name": "Northwind: 50 seats",
            "stage": stage,
            "open": True,
            "contact_ids": [CONTACT_ID],
            "close_date": close_date,
            "created_at": updated,
            "updated_at": updated,
            "created_by": "alice",
            "version": 3,
        }
    )


def on_timeline(days_ago: float, **fields: Any) -> SimpleNamespace:
    return SimpleNamespace(type=fields.pop("type", "activity"), date=NOW - timedelta(days=days_ago), **fields)


def test_a_deal_without_activity_for_the_stale_period_gets_a_follow_up_task() -> None:
    # Given a deal last changed just past the stale period, with nothing on its timeline
    [action] = assist._deal_actions(deal(updated_days_ago=STALE_AFTER_DAYS + 0.5), [], NOW)
    # Then a high-priority task for the deal and its first contact is due tomorrow
    assert action.type == "create_task"
    assert (action.payload.deal_id, action.payload.contact_id) == (DEAL_ID, CONTACT_ID)
    assert (action.payload.priority, action.payload.due) == ("high", NOW + timedelta(days=1))
    assert action.reason == f"No activity on the deal for {STALE_AFTER_DAYS} days (stage proposal)"


def test_recent_activity_on_the_timeline_keeps_a_deal_fresh() -> None:
    old = deal(updated_days_ago=60)
    assert assist._deal_actions(deal(updated_days_ago=STALE_AFTER_DAYS - 1), [], NOW) == []
    assert assist._deal_actions(old, [on_timeline(2, type="email")], NOW) == []
    # A meeting planned in the future is not activity yet
    [action] = assist._deal_actions(old, [on_timeline(-3, type="event")], NOW)
    assert action.type == "create_task"


def test_close_dates_past_and_near() -> None:
    # Given an open deal whose close date passed, then the date is moved ahead by a version-checked patch
    [moved] = assist._deal_actions(deal(updated_days_ago=1, close_date=date(2026, 11, 20)), [], NOW)
    assert moved.type == "update_deal"
    assert moved.payload.model_dump(mode="json") == {
        "deal_id": DEAL_ID,
        "changes": {"close_date": "2026-12-30", "version": 3},
    }
    # Given a close date in 13 days (a Sunday), then a review is booked the weekday before
    [review] = assist._deal_actions(deal(updated_days_ago=1, close_date=date(2026, 12, 13)), [], NOW)
    assert review.type == "schedule_meeting"
    assert review.payload.start.instant == datetime(2026, 12, 14, 10, 0, tzinfo=UTC)
    assert review.payload.deal_id == DEAL_ID
    assert review.payload.contact_ids == [CONTACT_ID]
    # Given a close date far ahead, then nothing
    assert assist._deal_actions(deal(updated_days_ago=1, close_date=date(2027, 6, 1)), [], NOW) == []


def email(days_ago: float, **fields: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "email_id": EMAIL_ID,
        "deleted": False,
        "direction": "inbound",
        "answered": False,
        "from_": [SimpleNamespace(address="kim@northwind.example", name="Kim Lee")],
        "subject": "Seats",
        "accounts": ["acc_" + "a" * 20],
        "category": "sales",
    }
    values.update(fields)
    return on_timeline(days_ago, type="email", **values)


def test_an_unanswered_inbound_email_asks_for_a_reply_after_a_day() -> None:
    [action] = assist._unanswered([email(2)], NOW, None)
    assert action.type == "send_email"
    assert action.payload.model_dump(mode="json") == {
        "account_id": "acc_" + "a" * 20,
        "to": [{"address": "kim@northwind.example", "name": "Kim Lee"}],
        "subject": "Re: Seats",
        "text": "Hi Kim,\n\nThanks for your message. I'll get back to you shortly.\n\nBest,",
        "reply_to_email_id": EMAIL_ID,
    }
    assert assist._unanswered([email(0.5)], NOW, None) == []
    assert assist._unanswered([email(2, category="newsletter")], NOW, None) == []
    assert assist._unanswered([email(2, category=None)], NOW, None) != []
    assert assist._unanswered([email(2, answered=True)], NOW, None) == []
    assert (
        assist._unanswered([email(2), email(1, direction="outbound", email_id="em_" + "4" * 26)], NOW, None)
        == []
    )


def test_a_stored_sender_the_outbox_would_refuse_gives_no_reply_action_and_no_error() -> None:
    # Given the newest email's sender stored as something that is not an address
    odd = email(2, from_=[SimpleNamespace(address="undisclosed-recipients", name=None)])
    # Then no send_email is suggested (rather than a 500 from the draft's validation)
    assert assist._unanswered([odd], NOW, None) == []
    # And a mailbox id of another shape is left out of the draft, which stays
    [action] = assist._unanswered([email(2, accounts=["imap-legacy"])], NOW, None)
    assert action.payload.account_id is None


def test_overdue_tasks_become_a_meeting_on_the_next_weekday() -> None:
    task = assist.TaskFact(task_id="tk_" + "5" * 26, title="Call Kim", due=NOW - timedelta(days=1))
    friday = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    [action] = assist._overdue_actions([task], friday, [CONTACT_ID], None)
    assert action.type == "schedule_meeting"
    assert action.payload.title == "Call Kim"
    assert action.payload.start.instant == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # Monday
    assert action.payload.end.instant == datetime(2026, 12, 7, 10, 30, tzinfo=UTC)


def test_action_ids_follow_the_facts() -> None:
    stale = deal(updated_days_ago=20)
    first = assist._deal_actions(stale, [], NOW)[0].action_id
    assert assist._deal_actions(stale, [], NOW + timedelta(hours=1))[0].action_id == first
    touched = deal(updated_days_ago=19)
    assert assist._deal_actions(touched, [], NOW)[0].action_id != first
    assert first == action_id_for("stale_deal", DEAL_ID, stale.updated_at.isoformat())


# ---------------------------------------------------------------------------------- apply once


class Actions:
    """In-memory `AssistActionStore`."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get_action(self, tenant_id: str, action_id: str) -> dict[str, Any] | None:
        return self.items.get((tenant_id, action_id))

    def put_action(self, tenant_id: str, action_id: str, values: dict[str, Any]) -> bool:
        if (tenant_id, action_id) in self.items:
            return False
        self.items[(tenant_id, action_id)] = dict(values)
        return True


def deps(actions: Actions) -> AssistDeps:
    unused: Any = None
    store: Any = actions
    return AssistDeps(
        emails=unused,
        blobs=unused,
        crm=unused,
        links=unused,
        features=unused,
        actions=store,
        now=lambda: NOW,
    )


def task_action(title: str = "Follow up") -> ApplyRequest:
    return ApplyRequest.model_validate(
        {"action": {"action_id": "act_" + "6" * 24, "type": "create_task", "payload": {"title": title}}}
    )


def test_an_action_is_performed_once_per_id_and_tenant() -> None:
    # Given a perform that counts its calls
    store, calls = Actions(), []

    def perform(ctx: TenantContext, action: Any, _deps: AssistDeps) -> tuple[str, dict[str, Any]]:
        calls.append((ctx.tenant_id, action.action_id))
        return f"tk_{len(calls)}", {"title": action.payload.title}

    # When the same action is applied twice in one tenant and once in another
    first = assist.apply_action(CTX, task_action(), deps(store), perform)
    again = assist.apply_action(CTX, task_action(), deps(store), perform)
    other = assist.apply_action(
        CTX.model_copy(update={"tenant_id": "globex"}), task_action(), deps(store), perform
    )
    # Then it was performed once per tenant, and the repeat answers the first result
    assert calls == [("acme", "act_" + "6" * 24), ("globex", "act_" + "6" * 24)]
    assert (first.replayed, again.replayed, other.replayed) == (False, True, False)
    assert (again.result_id, again.result) == ("tk_1", {"title": "Follow up"})
    # When the id comes back with another payload, then it is refused and nothing is done
    with pytest.raises(Conflict) as refused:
        assist.apply_action(CTX, task_action("Other"), deps(store), perform)
    assert refused.value.code == "action_id_reused"
    assert len(calls) == 2


def test_a_viewer_cannot_apply() -> None:
    viewer = CTX.model_copy(update={"role": Role.VIEWER})
    with pytest.raises(Forbidden):
        assist.apply_action(viewer, task_action(), deps(Actions()), lambda *_: ("x", {}))
