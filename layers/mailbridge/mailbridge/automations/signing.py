"""Signed webhook deliveries (`webhook.publish`): building the request, and verifying it.

The scheme follows Stripe's (docs.stripe.com/webhooks#verify-manually): an HMAC-SHA256 over
`{timestamp}.{raw body}` with the endpoint's own secret, the timestamp in its own header so a
receiver can refuse replays, compared in constant time. Each request carries:

| header | value |
|---|---|
| `Content-Type` | `application/json` |
| `Mailbridge-Timestamp` | Unix time in whole seconds when the request was signed |
| `Mailbridge-Signature` | `v1=<64 lower-case hex digits>`; several, comma-separated, during a rotation |
| `Mailbridge-Delivery-Id` | the delivery's id, the same on every retry of one action of one run |
| `Mailbridge-Event` | the event type that started the run (`contact.created`, ...), when there is one |

The body is the payload as compact JSON (UTF-8, no spaces), sent exactly as signed.

How a receiver verifies a delivery (`verify_webhook` does exactly this):

1. Read the raw body bytes before any JSON parsing (a re-serialized body will not verify).
2. Read `Mailbridge-Timestamp`; refuse the delivery if it is more than 5 minutes (300 s) away
   from your clock, either way.
3. Compute `hex(HMAC-SHA256(key=secret as UTF-8, message=timestamp + "." + raw body))`.
4. Compare it, in constant time (`hmac.compare_digest`), with every `v1=` value of
   `Mailbridge-Signature`; accept if one matches. Ignore other schemes (`v0=`, ...).
5. Deduplicate on `Mailbridge-Delivery-Id`: a retried delivery has the same id (at-least-once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailbridge.automations.errors import SignatureError

TIMESTAMP_HEADER = "Mailbridge-Timestamp"
SIGNATURE_HEADER = "Mailbridge-Signature"
DELIVERY_HEADER = "Mailbridge-Delivery-Id"
EVENT_HEADER = "Mailbridge-Event"
SCHEME = "v1"
TOLERANCE_SECONDS = 300
MIN_SECRET_CHARS = 32


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What `webhook.publish` POSTs: send `body` byte for byte with `headers`."""

    url: str
    body: bytes
    headers: dict[str, str]


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and 43 URL-safe characters (256 random bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def encode_body(payload: Any) -> bytes:
    """The payload as the compact UTF-8 JSON that is signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of `{timestamp}.{body}` keyed with `secret` (UTF-8)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def build_webhook_request(
    *,
    url: str,
    payload: Any,
    endpoint_secrets: Sequence[str],
    delivery_id: str,
    timestamp: int,
    event_type: str | None = None,
) -> SignedRequest:
    """The signed request for one delivery (pure: the clock and the id are passed in).

    `endpoint_secrets` are the endpoint's active secrets, newest first (two during a rotation): one
    `v1=` signature each. Raises ValueError for an empty list or a secret shorter than
    `MIN_SECRET_CHARS` (a configuration error, not a client's).
    """
    if not endpoint_secrets or any(len(secret) < MIN_SECRET_CHARS for secret in endpoint_secrets):
        raise ValueError(f"a webhook secret has at least {MIN_SECRET_CHARS} characters")
    body = encode_body(payload)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: ",".join(f"{SCHEME}={signature(s, timestamp, body)}" for s in endpoint_secrets),
        DELIVERY_HEADER: delivery_id,
    }
    if event_type:
        headers[EVENT_HEADER] = event_type
    return SignedRequest(url=url, body=body, headers=headers)


def verify_webhook(
    *,
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check a delivery as a receiver must; returns its delivery id.

    Header names are matched case-insensitively. Raises SignatureError with code
    `signature_missing` (no timestamp or no `v1=` signature), `timestamp_out_of_tolerance`
    (more than `tolerance` seconds from `now`, either way) or `signature_mismatch`.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    candidates = [
        part.strip()[len(SCHEME) + 1 :]
        for part in lowered.get(SIGNATURE_HEADER.lower(), "").split(",")
        if part.strip().startswith(f"{SCHEME}=")
    ]
    if not stamp.isascii() or not stamp.isdigit() or not candidates:
        raise SignatureError("the delivery is not signed", code="signature_missing")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        raise SignatureError("the delivery is too old or from the future", code="timestamp_out_of_tolerance")
    expected = signature(secret, timestamp, body)
    matched = False
    for candidate in candidates:  # compare against all of them: no early exit to time
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise SignatureError("the signature does not match", code="signature_mismatch")
    return lowered.get(DELIVERY_HEADER.lower(), "")
