"""HubSpot webhooks in: verify the v3 signature, parse the event array.

Pure functions, no I/O, the clock injected: the `webhooks` function (not built here) passes the
request's method, the URI HubSpot called, the raw body and the headers, then enqueues the events
it has not seen (`unseen`) and answers 2xx; a refusal is the error's 4xx (HubSpot does not
retry 400, 401, 403, 404 or 405).

Sources: HubSpot developer docs "Validating requests from HubSpot" (v3) and the changelog
"Introducing version 3 of webhook signatures"; "Webhooks API" (the event fields); the SDK test
vectors in `../shared/data/providers/hubspot/signature_test_vectors.json` (notes.md):

* `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(key = the app's client secret,
  message = method + URI + raw body + timestamp)), the timestamp being the
  `X-HubSpot-Request-Timestamp` header (epoch milliseconds), the URI the full URL HubSpot
  called with these escapes decoded first: %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B;
* a request whose timestamp is more than 5 minutes old is refused (so is one more than 5 minutes
  ahead: clock skew is not a licence to sign for the future); the comparison is constant time
  (`hmac.compare_digest`);
* v1 (hex sha256(secret + body)) and v2 (hex sha256(secret + method + URI + body)) are computed
  here for the test vectors only: they carry no timestamp, so a captured request could be
  replayed forever, and `verify_v3` is the only check this module accepts;
* the body is a JSON array of up to 100 events (`eventId`, `subscriptionId`, `portalId`, `appId`,
  `occurredAt` epoch ms, `subscriptionType`, `attemptNumber`, `objectId`, `changeSource`, and
  `propertyName` / `propertyValue` on property changes); delivery is at least once and in no
  order, so a caller drops events whose `eventId` it has already taken.

Errors (`mailbridge.errors`, messages fixed text, never a header or body value):
`Unauthorized` (401) `missing_signature`, `invalid_timestamp`, `stale_timestamp`,
`invalid_signature`; `PayloadTooLarge` (413) `webhook_body_too_large`; `Invalid` (400)
`invalid_json`, `invalid_webhook_events`, `no_events`, `too_many_events`; `Forbidden` (403)
`portal_mismatch`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from mailbridge.errors import Forbidden, Invalid, PayloadTooLarge, Unauthorized
from mailbridge.models.base import Model

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_AGE = timedelta(minutes=5)
MAX_EVENTS = 100
MAX_BODY_BYTES = 1024 * 1024
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)
_TIMESTAMP = re.compile(r"[0-9]{1,16}")


def signing_uri(uri: str) -> str:
    """`uri` with the twelve escapes HubSpot decodes before signing decoded (either hex case);
    every other escape, `%20` included, stays as it is."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def signature_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(client_secret, method + signing_uri(uri) + body + timestamp))."""
    message = method.encode() + signing_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_v2(client_secret: str, method: str, uri: str, body: bytes) -> str:
    """hex(sha256(client_secret + method + uri + body)): computed, never accepted (no timestamp)."""
    return hashlib.sha256(client_secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def signature_v1(client_secret: str, body: bytes) -> str:
    """hex(sha256(client_secret + body)): computed, never accepted (no timestamp, no URI)."""
    return hashlib.sha256(client_secret.encode() + body).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def verify_v3(
    *,
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
) -> None:
    """Check a webhook request's v3 signature and timestamp; returns None or raises `Unauthorized`.

    `uri`: the full URL HubSpot called (scheme, host, path and query, as received); `headers`:
    the request headers, names in any case; `now`: the current time (timezone-aware).
    Codes: `missing_signature` (no v3 header), `invalid_timestamp` (absent or not epoch ms),
    `stale_timestamp` (more than `MAX_AGE` from `now`, either way), `invalid_signature`.
    """
    signature = _header(headers, SIGNATURE_HEADER)
    if not signature:
        raise Unauthorized("the request has no v3 signature", code="missing_signature")
    timestamp = (_header(headers, TIMESTAMP_HEADER) or "").strip()
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized(
            "the request timestamp is missing or not epoch milliseconds", code="invalid_timestamp"
        )
    signed_at = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC)
    if abs(now - signed_at) > MAX_AGE:
        raise Unauthorized("the request timestamp is outside the 5-minute window", code="stale_timestamp")
    expected = signature_v3(client_secret, method.upper(), uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise Unauthorized("the v3 signature does not match", code="invalid_signature")


def _epoch_ms(value: object) -> datetime:
    """`occurredAt`: an integer of epoch milliseconds (pydantic alone would read small numbers as
    seconds)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**15:
        raise ValueError("occurredAt is epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class HubSpotEvent(Model):
    """One webhook event. `occurred_at` is `occurredAt` (epoch ms) as a UTC datetime;
    `property_name` / `property_value` are set on `*.propertyChange` events only. Fields HubSpot
    adds later are ignored."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    event_id: int = Field(alias="eventId", ge=0)
    subscription_id: int = Field(alias="subscriptionId", ge=0)
    portal_id: int = Field(alias="portalId", ge=0)
    app_id: int = Field(alias="appId", ge=0)
    occurred_at: Annotated[datetime, BeforeValidator(_epoch_ms)] = Field(alias="occurredAt")
    subscription_type: str = Field(alias="subscriptionType", pattern=r"^[a-z_]+\.[A-Za-z_]+$", max_length=80)
    attempt_number: int = Field(alias="attemptNumber", default=0, ge=0)
    object_id: int = Field(alias="objectId", ge=0)
    change_source: str | None = Field(alias="changeSource", default=None, max_length=80)
    property_name: str | None = Field(alias="propertyName", default=None, max_length=100)
    property_value: str | None = Field(alias="propertyValue", default=None)


_EVENTS: TypeAdapter[list[HubSpotEvent]] = TypeAdapter(list[HubSpotEvent])


def parse_events(body: bytes, *, portal_id: int | None = None) -> list[HubSpotEvent]:
    """The events of a (verified) webhook body, in body order.

    `body`: a JSON array of 1..`MAX_EVENTS` event objects. `portal_id`: when given, every event
    must come from that portal (`Forbidden` `portal_mismatch`). Raises `PayloadTooLarge` or
    `Invalid` (codes in the module doc); the error details name the field and the rule, never the
    value (pydantic's `input_value` is dropped).
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("the webhook body is too large", code="webhook_body_too_large")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("the webhook body is not JSON", code="invalid_json") from None
    if not isinstance(raw, list):
        raise Invalid("the webhook body is not a JSON array of events", code="invalid_webhook_events")
    if not raw:
        raise Invalid("the webhook body holds no event", code="no_events")
    if len(raw) > MAX_EVENTS:
        raise Invalid("the webhook body holds more than 100 events", code="too_many_events")
    try:
        events = _EVENTS.validate_python(raw)
    except ValidationError as error:
        details = [{"loc": list(e["loc"]), "type": e["type"]} for e in error.errors()]
        raise Invalid(
            "an event does not have HubSpot's shape", code="invalid_webhook_events", details=details
        ) from None
    if portal_id is not None and any(e.portal_id != portal_id for e in events):
        raise Forbidden("an event comes from another HubSpot portal", code="portal_mismatch")
    return events


def unseen(events: list[HubSpotEvent], seen: Collection[int]) -> list[HubSpotEvent]:
    """The events whose `event_id` is not in `seen` (nor repeated earlier in `events`)."""
    taken = set(seen)
    out: list[HubSpotEvent] = []
    for event in events:
        if event.event_id not in taken:
            taken.add(event.event_id)
            out.append(event)
    return out
