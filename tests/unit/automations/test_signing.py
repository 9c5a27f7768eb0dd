"""Webhook signing: what a receiver gets, and the verification recipe of the docs."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from mailbridge.automations.errors import SignatureError
from mailbridge.automations.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    build_webhook_request,
    new_secret,
    verify_webhook,
)

SECRET = "whsec_" + "k" * 43
PAYLOAD = {"event": "contact.created", "contact": {"email": "ada@example.com", "name": "Ada Lovelace ✓"}}
NOW = 1_774_650_000


def _request(**overrides: object):
    arguments: dict[str, object] = {
        "url": "https://hooks.example.com/in",
        "payload": PAYLOAD,
        "endpoint_secrets": [SECRET],
        "delivery_id": "dlv_01",
        "timestamp": NOW,
        "event_type": "contact.created",
    }
    arguments.update(overrides)
    return build_webhook_request(**arguments)  # type: ignore[arg-type]


def test_the_request_carries_the_raw_json_and_an_hmac_over_timestamp_dot_body() -> None:
    # Given a delivery / When it is built
    request = _request()
    # Then the body is compact UTF-8 JSON and the signature is what a receiver computes by hand
    assert request.body == json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == f"v1={expected}"
    assert request.headers[TIMESTAMP_HEADER] == str(NOW)
    assert request.headers[DELIVERY_HEADER] == "dlv_01"
    assert request.headers["Mailbridge-Event"] == "contact.created"
    assert request.headers["Content-Type"] == "application/json"


def test_a_receiver_verifies_it_within_the_tolerance_and_gets_the_delivery_id() -> None:
    request = _request()
    lowered = {k.lower(): v for k, v in request.headers.items()}  # proxies lower-case names
    assert verify_webhook(body=request.body, headers=lowered, secret=SECRET, now=NOW + 299) == "dlv_01"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"body": b'{"event":"contact.deleted"}'}, "signature_mismatch"),
        ({"secret": "whsec_" + "x" * 43}, "signature_mismatch"),
        ({"now": NOW + 301}, "timestamp_out_of_tolerance"),
        ({"now": NOW - 301}, "timestamp_out_of_tolerance"),
        ({"drop": SIGNATURE_HEADER}, "signature_missing"),
        ({"drop": TIMESTAMP_HEADER}, "signature_missing"),
        ({"signature": "v0=abc"}, "signature_missing"),
        ({"signature": "v1=é"}, "signature_mismatch"),
        ({"timestamp": "\uff11\uff12\uff13"}, "signature_missing"),  # full-width digits
    ],
)
def test_tampering_replay_and_missing_headers_are_refused(change: dict[str, object], code: str) -> None:
    request = _request()
    headers = dict(request.headers)
    if "drop" in change:
        del headers[str(change["drop"])]
    if "signature" in change:
        headers[SIGNATURE_HEADER] = str(change["signature"])
    if "timestamp" in change:
        headers[TIMESTAMP_HEADER] = str(change["timestamp"])
    with pytest.raises(SignatureError) as caught:
        verify_webhook(
            body=change.get("body", request.body),  # type: ignore[arg-type]
            headers=headers,
            secret=str(change.get("secret", SECRET)),
            now=int(change.get("now", NOW)),  # type: ignore[call-overload]
        )
    assert caught.value.code == code


def test_during_a_rotation_either_secret_verifies() -> None:
    # Given a delivery signed with the new and the old secret
    old, new = new_secret(), new_secret()
    request = _request(endpoint_secrets=[new, old])
    # Then a receiver holding either one accepts it
    assert request.headers[SIGNATURE_HEADER].count("v1=") == 2
    for secret in (old, new):
        verify_webhook(body=request.body, headers=request.headers, secret=secret, now=NOW)


def test_a_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        _request(endpoint_secrets=["short"])
    with pytest.raises(ValueError):
        _request(endpoint_secrets=[])


def test_the_same_delivery_id_and_clock_give_the_same_bytes() -> None:
    # A retry rebuilds exactly the same request, so the receiver can dedupe on its id
    assert _request() == _request()
