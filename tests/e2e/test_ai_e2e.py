"""Issue 14 acceptance for categorization through the local runner: a real Dovecot mailbox is
connected over the HTTP API and synced; `email.received` goes through the template's rule to the
CategorizeQueue and the categorize function; a user's corrections through the API become a rule
that decides the next email from that sender, which arrives by the next poll."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ai"
CUSTOMER = "Priya Natarajan <priya@customer.example>"


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def question(n: int) -> bytes:
    """The customer's support question, as her n-th email (its own Message-ID)."""
    raw = (FIXTURES / "support_question.eml").read_bytes()
    return re.sub(
        rb"(?im)^Message-ID:[^\r\n]*", f"Message-ID: <q-{n}@customer.example>".encode(), raw, count=1
    )


def test_synced_mail_is_categorized_and_corrections_decide_the_next_email(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    token = runner.token(tenant="ai-e2e", role="admin", sub="alice")
    status, flags = call(runner, "PUT", "/features", token, {"ai": True})
    assert status == 200, flags
    # Given a mailbox holding a newsletter, a bounce and two questions from one customer
    for raw in (
        (FIXTURES / "newsletter.eml").read_bytes(),
        (FIXTURES / "bounce.eml").read_bytes(),
        question(1),
        question(2),
    ):
        dovecot_server.append(dovecot_user, "INBOX", raw)
    # When it is connected and synced, and the categorize function has run
    connect_mailbox(runner, token, dovecot_server, dovecot_user)
    runner.drain()
    # Then each email is listed with its category
    status, page = call(runner, "GET", "/emails?limit=100", token)
    assert status == 200, page
    by_category: dict[str, list[str]] = {}
    for email in page["items"]:
        by_category.setdefault(str(email["category"]), []).append(email["email_id"])
    assert {k: len(v) for k, v in by_category.items()} == {"newsletter": 1, "notification": 1, "support": 2}
    # When the user corrects both questions to sales
    for email_id in by_category["support"]:
        status, email = call(runner, "PATCH", f"/emails/{email_id}", token, {"category": "sales"})
        assert status == 200, email
        assert (email["category"], email["category_source"]) == ("sales", "user")
    status, rules = call(runner, "GET", "/ai/rules", token)
    assert status == 200, rules
    # Then the tenant has a rule for her address (one address does not make a domain rule)
    assert [(r["kind"], r["value"], r["category"]) for r in rules["items"]] == [
        ("address", "priya@customer.example", "sales")
    ]
    # And her next question arrives with the next poll
    dovecot_server.append(dovecot_user, "INBOX", question(3))
    runner.advance(5 * 60)
    runner.drain()
    # Then it is categorized as sales by the rule, which its reasons name
    status, sales = call(runner, "GET", "/emails?category=sales", token)
    assert status == 200, sales
    new = [e for e in sales["items"] if e["email_id"] not in by_category["support"]]
    assert len(new) == 1
    status, email = call(runner, "GET", f"/emails/{new[0]['email_id']}", token)
    assert status == 200, email
    address_rule = rules["items"][0]["rule_id"]
    assert (email["category"], email["category_source"]) == ("sales", "rule")
    assert email["reasons"][0] == f"rule:sender:{address_rule}"
