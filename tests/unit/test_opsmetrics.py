"""The operational metrics the alarms read (`mailbridge.opsmetrics`): emitted where the work
happens, with bounded dimensions. Powertools prints each as an EMF line; `capsys` catches it.

The Gmail adapter's 429, the Graph adapter's 429s, the sync lag, the token refresh refused by the
provider and the Gmail push token checks are proved on the doubles in the integration tier
(test_gmail_adapter/test_graph_adapter, test_gmail_sync, test_webhooks_gmail)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from mailbridge import accounts as account_service
from mailbridge import opsmetrics
from mailbridge.errors import Forbidden, Invalid, ProviderError, ProviderRateLimited, Unauthorized
from mailbridge.models.account import Account
from mailbridge.oauth.tokens import AccessTokens
from mailbridge.providers.gmail.quota import QuotaBudget
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.webhooks import gmail as gmail_webhook
from mailbridge.webhooks import graph as graph_webhook
from mailbridge.webhooks.verify import PushVerifier
from tests.emf import emitted


def seen(capsys: pytest.CaptureFixture[str], name: str) -> list[tuple[Any, ...]]:
    """(value, provider, reason) of each `name` record printed so far."""
    return [
        (r["value"], r["dimensions"]["provider"], r["dimensions"].get("reason"))
        for r in emitted(capsys.readouterr().out, name)
    ]


def test_dimensions_stay_bounded_whatever_the_caller_passes(capsys: pytest.CaptureFixture[str]) -> None:
    # When a figure names a provider outside the list and a reason that is not a code
    opsmetrics.webhook_rejected("evil.example.com", "Alice@Example.com wrote this")

    # Then both dimensions collapse to `other` (no address, tenant or free text reaches CloudWatch)
    [record] = emitted(capsys.readouterr().out, "WebhookRejected")
    assert (record["dimensions"]["provider"], record["dimensions"]["reason"]) == ("other", "other")
    assert record["namespace"] == "mailbridge"


def test_a_figure_outside_the_functions_still_has_a_namespace(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no POWERTOOLS_METRICS_NAMESPACE (a script, a shell): Powertools would refuse the metric
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)

    # When a figure is emitted, then it goes out in the template's namespace instead of failing
    opsmetrics.sync_lag("imap", 2.5)
    [record] = emitted(capsys.readouterr().out, "SyncLag")
    assert (record["namespace"], record["value"]) == ("mailbridge", 2.5)


def test_the_gmail_budget_counts_a_spent_minute(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a budget of 5 units a minute, spent by one messages.get
    budget = QuotaBudget(units_per_minute=5, clock=lambda: 0.0)
    budget.spend("users.messages.get")

    # When the next call does not fit
    with pytest.raises(ProviderRateLimited):
        budget.spend("users.messages.get")

    # Then one ProviderThrottled (gmail, budget) is emitted; the spend that fitted emitted nothing
    assert seen(capsys, "ProviderThrottled") == [(1, "gmail", "budget")]


def test_the_graph_budget_counts_a_spent_window(capsys: pytest.CaptureFixture[str]) -> None:
    budget = RequestBudget(requests_per_window=1, clock=lambda: 0.0)
    budget.take().release()

    with pytest.raises(ProviderRateLimited):
        budget.take()

    assert seen(capsys, "ProviderThrottled") == [(1, "graph", "budget")]


class _NoSubscriptions:
    def get_many(self, ids: Any) -> dict[str, Any]:
        list(ids)
        return {}


class _Queue:
    def send_many(self, messages: Any, ids: Any) -> None:  # pragma: no cover - nothing is authentic
        raise AssertionError("a forged batch queued something")


def _graph_deps() -> graph_webhook.GraphWebhookDeps:
    return graph_webhook.GraphWebhookDeps(
        subscriptions=cast("Any", _NoSubscriptions()), queue=cast("Any", _Queue())
    )


def test_a_graph_batch_of_forged_items_counts_each(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a batch of three notifications for subscriptions nobody made
    batch = {
        "value": [
            {"subscriptionId": f"sub-{i}", "clientState": "guess", "changeType": "created", "resource": "x"}
            for i in range(3)
        ]
    }

    # When it is received
    with pytest.raises(Forbidden):
        graph_webhook.receive(json.dumps(batch), _graph_deps())

    # Then the three forged items are counted under their reason
    assert seen(capsys, "WebhookRejected") == [(3, "graph", "forged_notification")]


def test_a_graph_body_that_is_no_batch_and_a_bad_handshake_token_are_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(Invalid):
        graph_webhook.receive("not json", _graph_deps())
    with pytest.raises(Invalid):
        graph_webhook.validation_answer("a%20b")

    assert seen(capsys, "WebhookRejected") == [
        (1, "graph", "invalid_notification"),
        (1, "graph", "invalid_validation_token"),
    ]


def _gmail_deps(verifier: PushVerifier | None) -> gmail_webhook.WebhookDeps:
    unused = cast("Any", None)
    return gmail_webhook.WebhookDeps(
        verifier=verifier, receipts=unused, accounts=unused, queue=unused, now=lambda: datetime.now(UTC)
    )


def test_gmail_pushes_refused_before_any_check_are_counted_by_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    verifier = PushVerifier(
        certs_url="https://certs.invalid/", audience="aud", service_account="push@example.iam"
    )
    # When a deployment without push gets one, and a push comes without a token
    with pytest.raises(Forbidden):
        gmail_webhook.receive("Bearer x", "{}", _gmail_deps(None))
    with pytest.raises(Unauthorized):
        gmail_webhook.receive(None, "{}", _gmail_deps(verifier))

    assert seen(capsys, "WebhookRejected") == [
        (1, "gmail", "push_not_configured"),
        (1, "gmail", "missing_token"),
    ]


class _Store:
    def mark_reauth_required(self, *args: Any) -> bool:
        return False  # already marked: no event to publish


class _FailingProvider:
    def refresh(self, refresh_token: str) -> Any:
        raise ProviderError("the token endpoint failed", code="unavailable")


def _account(provider: str = "gmail") -> Account:
    return Account(
        account_id="a1",
        tenant_id="t1",
        provider=cast("Any", provider),
        address="ada@example.com",
        created_at=datetime.now(UTC),
        created_by="u1",
    )


@pytest.mark.parametrize(
    ("secrets", "error", "reason"),
    [({}, "reauth_required", "no_refresh_token"), ({"refresh_token": "r"}, "unavailable", "unavailable")],
)
def test_a_refresh_that_cannot_be_made_or_fails_is_counted(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secrets: dict[str, str],
    error: str,
    reason: str,
) -> None:
    # Given an account whose stored secrets are `secrets`, and a token endpoint that fails
    monkeypatch.setattr(account_service, "load_secrets", lambda _store, _account: secrets)
    tokens = AccessTokens(
        cast("Any", _Store()),
        cast("Any", None),
        key_id="k",
        providers=lambda _name: cast("Any", _FailingProvider()),
    )

    # When a token is asked for
    with pytest.raises(ProviderError) as raised:
        tokens.get(_account())

    # Then the failure is raised as before and counted by provider and reason
    assert raised.value.code == error
    assert seen(capsys, "TokenRefreshFailed") == [(1, "gmail", reason)]
