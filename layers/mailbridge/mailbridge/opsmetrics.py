"""The operational metrics that `template.yaml`'s alarms and dashboard read.

Each is one CloudWatch embedded-metric-format (EMF) line written by Powertools `single_metric`
at the moment the work happens, in the functions' namespace (`POWERTOOLS_METRICS_NAMESPACE`,
`mailbridge` in the template). `single_metric` rather than the shared `metrics` object so that
each figure carries its own dimensions (`provider`, `reason`) without putting them on every other
metric of the invocation; Powertools adds `service` (the function) to each line. The alarms read
them with Metrics Insights queries (`SELECT SUM(name) FROM mailbridge WHERE provider = ...`),
which add up every `service` and `reason`, so a new emitter needs no alarm change.

Dimensions are bounded: `provider` is one of a fixed handful and `reason` one of the codes this
package raises. Never a tenant, account, address or anything a request chose.

- `SyncLag` (Seconds; provider): the sync service at the end of every run, now minus the
  record's `requested_at` (queue wait + run).
- `WebhookRejected` (Count; provider, reason): the webhook services, per refused push or forged item
  (Gmail, Graph, Salesforce outbound messages, HubSpot webhooks).
- `TokenRefreshFailed` (Count; provider, reason): `oauth.tokens` (mailboxes) and the CRM
  integrations' refresh (`crm.integrations.service`), when a refresh is refused or fails.
- `ProviderThrottled` (Count; provider, reason): the Gmail/Graph adapters on a 429 or quota
  answer, and their per-mailbox budgets when spent; the Salesforce adapter on
  `REQUEST_LIMIT_EXCEEDED` (`request_limit_exceeded`), the HubSpot adapter on every 429.
"""

from __future__ import annotations

import os
import re

from aws_lambda_powertools.metrics import MetricUnit, single_metric

SYNC_LAG = "SyncLag"
WEBHOOK_REJECTED = "WebhookRejected"
TOKEN_REFRESH_FAILED = "TokenRefreshFailed"  # noqa: S105  (a metric name)
PROVIDER_THROTTLED = "ProviderThrottled"
OPERATIONAL_METRICS = (SYNC_LAG, WEBHOOK_REJECTED, TOKEN_REFRESH_FAILED, PROVIDER_THROTTLED)

DEFAULT_NAMESPACE = "mailbridge"
"""The template's POWERTOOLS_METRICS_NAMESPACE; used where it is not set (scripts, a shell), so that
a figure never fails the work it describes (Powertools refuses a metric without a namespace)."""

PROVIDERS = ("gmail", "graph", "imap", "salesforce", "hubspot")
"""The values `provider` takes; anything else is reported as `other`."""

_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _dimensions(provider: str, reason: str | None) -> dict[str, str]:
    dimensions = {"provider": provider if provider in PROVIDERS else "other"}
    if reason is not None:
        dimensions["reason"] = reason if _REASON.fullmatch(reason) else "other"
    return dimensions


def _emit(name: str, unit: MetricUnit, value: float, provider: str, reason: str | None = None) -> None:
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=namespace,
        default_dimensions=_dimensions(provider, reason),
    ):
        pass


def sync_lag(provider: str, seconds: float) -> None:
    """`SyncLag` (Seconds, `provider`): how long after its request a sync run ended."""
    _emit(SYNC_LAG, MetricUnit.Seconds, max(seconds, 0.0), provider)


def webhook_rejected(provider: str, reason: str, count: int = 1) -> None:
    """`WebhookRejected` (Count, `provider`, `reason`): pushes or items refused as not authentic
    or not well formed; `reason` is the error code (or the token check that failed)."""
    _emit(WEBHOOK_REJECTED, MetricUnit.Count, count, provider, reason)


def token_refresh_failed(provider: str, reason: str) -> None:
    """`TokenRefreshFailed` (Count, `provider`, `reason`): an OAuth refresh the provider refused
    (`revoked`), could not be made (`no_refresh_token`) or that failed (the error's code)."""
    _emit(TOKEN_REFRESH_FAILED, MetricUnit.Count, 1, provider, reason)


def provider_throttled(provider: str, reason: str) -> None:
    """`ProviderThrottled` (Count, `provider`, `reason`): a provider answered 429 or a quota error
    (`http_429`, Gmail's 403 reason such as `userRateLimitExceeded` lower-cased), or the mailbox's
    own request budget was spent (`budget`)."""
    _emit(PROVIDER_THROTTLED, MetricUnit.Count, 1, provider, reason)
