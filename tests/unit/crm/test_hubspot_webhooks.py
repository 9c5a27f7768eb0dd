"""HubSpot webhooks in (`mailbridge.crm.remote.hubspot_webhooks`): the SDK's signature vectors
(read from the corpus path), v3 verification against forged, stale and replayed requests with an
injected clock, and the event array parsed into models."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbridge.crm.remote.hubspot_webhooks import (
    MAX_BODY_BYTES,
    parse_events,
    signature_v1,
    signature_v2,
    signature_v3,
    signing_uri,
    unseen,
    verify_v3,
)
from mailbridge.errors import Forbidden, Invalid, PayloadTooLarge, Unauthorized

_CORPUS = os.environ.get("MAILBRIDGE_CORPUS")
DATA = Path(_CORPUS or Path(__file__).resolve().parents[4] / "shared" / "data") / "providers" / "hubspot"
NO_CORPUS = "corpus not found: set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data"
needs_corpus = pytest.mark.skipif(not DATA.is_dir(), reason=NO_CORPUS)

SECRET = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
URI = "https://hooks.example.com/webhooks/hubspot"
NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "objectId": 1246965,
        "propertyName": "lifecyclestage",
        "propertyValue": "subscriber",
        "changeSource": "CRM_UI",
        "eventId": 3816279340,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": 1893488400000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
    }
    return {**base, **changes}


def signed(
    body: bytes, *, at: datetime = NOW, uri: str = URI, secret: str = SECRET, method: str = "POST"
) -> dict[str, str]:
    stamp = ms(at)
    return {
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": signature_v3(secret, method, uri, body, stamp),
    }


def refusal(body: bytes, headers: dict[str, str], *, uri: str = URI, method: str = "POST") -> str:
    with pytest.raises(Unauthorized) as raised:
        verify_v3(client_secret=SECRET, method=method, uri=uri, body=body, headers=headers, now=NOW)
    return raised.value.code


# ---------------------------------------------------------------------------- signatures


@needs_corpus
def test_the_sdk_signature_vectors_all_pass():
    # Given HubSpot's SDK test vectors
    vectors = json.loads((DATA / "signature_test_vectors.json").read_text())
    secret, body, url = vectors["client_secret"], vectors["request_body"].encode(), vectors["url"]
    # Then v1, v2 (POST, and GET with no body) and v3 come out as HubSpot computes them
    assert signature_v1(secret, body) == vectors["v1"]["signature"]
    assert signature_v2(secret, "POST", url, body) == vectors["v2"]["signature"]
    assert signature_v2(secret, "GET", url, b"") == vectors["v2_GET_empty_body"]["signature"]
    stamp = vectors["timestamp"]
    assert signature_v3(secret, vectors["http_method"], url, body, stamp) == vectors["v3"]["signature"]
    # And the v3 request verifies at its own time, and is stale at any time since
    headers = {vectors["v3"]["header"]: vectors["v3"]["signature"], "X-HubSpot-Request-Timestamp": stamp}
    at = datetime.fromtimestamp(int(stamp) / 1000, tz=UTC)
    verify_v3(client_secret=secret, method="POST", uri=url, body=body, headers=headers, now=at)
    with pytest.raises(Unauthorized) as raised:
        verify_v3(client_secret=secret, method="POST", uri=url, body=body, headers=headers, now=NOW)
    assert raised.value.code == "stale_timestamp"


def test_a_signed_request_verifies_with_headers_in_any_case():
    # Given a signed body, its headers lower-cased (as API Gateway passes them)
    body = json.dumps([event()]).encode()
    headers = {k.lower(): v for k, v in signed(body).items()}
    # When it is verified, Then nothing is raised
    verify_v3(client_secret=SECRET, method="POST", uri=URI, body=body, headers=headers, now=NOW)


def test_the_uri_is_signed_with_the_twelve_documented_escapes_decoded():
    # Given a URI holding each decoded escape (in both hex cases) and one that is not decoded
    encoded = URI + "?q=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&r=%3a%2f&s=%20%26"
    # Then the signing form decodes the twelve and keeps the others
    assert signing_uri(encoded) == URI + "?q=:/?@!$'()*,;&r=:/&s=%20%26"
    # And a request HubSpot signed over the decoded URI verifies where the receiver saw it encoded
    body = b"[]"
    stamp = ms(NOW)
    headers = {
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": signature_v3(SECRET, "POST", signing_uri(encoded), body, stamp),
    }
    verify_v3(client_secret=SECRET, method="POST", uri=encoded, body=body, headers=headers, now=NOW)


def test_forged_requests_are_401s():
    body = json.dumps([event()]).encode()
    good = signed(body)
    # When the secret, body, method or URI differ from what was signed, Then the signature fails
    assert refusal(body, signed(body, secret="not-" + SECRET)) == "invalid_signature"
    assert refusal(body.replace(b"1246965", b"999999"), good) == "invalid_signature"
    assert refusal(body, good, method="PUT") == "invalid_signature"
    assert refusal(body, good, uri=URI + "?other=1") == "invalid_signature"
    assert refusal(body, {**good, "X-HubSpot-Signature-v3": good["X-HubSpot-Signature-v3"][:-2]}) == (
        "invalid_signature"
    )
    assert refusal(body, {**good, "X-HubSpot-Signature-v3": "é" * 44}) == "invalid_signature"
    # And the timestamp is part of what is signed: another one within the window fails too
    moved = {**good, "X-HubSpot-Request-Timestamp": ms(NOW - timedelta(seconds=1))}
    assert refusal(body, moved) == "invalid_signature"
    # When a header is missing or the timestamp is not epoch ms, Then that is the code
    assert refusal(body, {"X-HubSpot-Request-Timestamp": ms(NOW)}) == "missing_signature"
    assert refusal(body, {"X-HubSpot-Signature-v3": good["X-HubSpot-Signature-v3"]}) == "invalid_timestamp"
    for stamp in ("-1", "1.5e12", "", "12 34"):
        assert refusal(body, {**good, "X-HubSpot-Request-Timestamp": stamp}) == "invalid_timestamp"


def test_the_five_minute_window_both_ways():
    body = b"[]"
    # Given requests signed exactly 5 minutes ago, 5 minutes and 1 ms ago, and 6 minutes ahead
    edge = signed(body, at=NOW - timedelta(minutes=5))
    stale = signed(body, at=NOW - timedelta(minutes=5, milliseconds=1))
    ahead = signed(body, at=NOW + timedelta(minutes=6))
    # Then the first verifies, and the others are refused as outside the window
    verify_v3(client_secret=SECRET, method="POST", uri=URI, body=body, headers=edge, now=NOW)
    assert refusal(body, stale) == "stale_timestamp"
    assert refusal(body, ahead) == "stale_timestamp"


def test_a_replay_verifies_within_the_window_but_brings_no_unseen_event_and_is_stale_after():
    # Given a delivered request whose events were taken
    body = json.dumps([event(eventId=1), event(eventId=2)]).encode()
    headers = signed(body)
    taken = [e.event_id for e in parse_events(body)]
    # When the same bytes come again a minute later
    later = NOW + timedelta(minutes=1)
    verify_v3(client_secret=SECRET, method="POST", uri=URI, body=body, headers=headers, now=later)
    # Then nothing in it is new
    assert unseen(parse_events(body), taken) == []
    # And six minutes on it is refused outright
    with pytest.raises(Unauthorized) as raised:
        verify_v3(
            client_secret=SECRET,
            method="POST",
            uri=URI,
            body=body,
            headers=headers,
            now=NOW + timedelta(minutes=6),
        )
    assert raised.value.code == "stale_timestamp"


# ---------------------------------------------------------------------------- events


@needs_corpus
def test_the_documented_payload_parses_into_events():
    # When the documented contact payload is parsed
    events = parse_events((DATA / "webhook_payload_contact.reconstructed-from-docs.json").read_bytes())
    # Then each event has its fields, occurredAt as a UTC datetime, property fields where present
    change, creation = events
    assert (change.subscription_type, change.object_id, change.event_id) == (
        "contact.propertyChange",
        1246965,
        3816279340,
    )
    assert (change.property_name, change.property_value) == ("lifecyclestage", "subscriber")
    assert change.occurred_at == datetime(2016, 5, 2, 19, 11, 47, 945000, tzinfo=UTC)
    assert (change.portal_id, change.app_id, change.attempt_number) == (33, 1160452, 0)
    assert (creation.subscription_type, creation.property_name, creation.change_source) == (
        "contact.creation",
        None,
        "IMPORT",
    )


def test_occurred_at_is_milliseconds_even_when_small():
    # Given an event whose occurredAt is a small number of milliseconds
    (parsed,) = parse_events(json.dumps([event(occurredAt=15_000_000)]).encode())
    # Then it is read as milliseconds (4 h 10 min after the epoch), not seconds
    assert parsed.occurred_at == datetime(1970, 1, 1, 4, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"eventId": 1}', "invalid_webhook_events"),
        (b"[]", "no_events"),
        (json.dumps([event(eventId=i) for i in range(101)]).encode(), "too_many_events"),
        (
            json.dumps([{k: v for k, v in event().items() if k != "eventId"}]).encode(),
            "invalid_webhook_events",
        ),
        (json.dumps([event(occurredAt="2030-01-01")]).encode(), "invalid_webhook_events"),
        (json.dumps([event(occurredAt=True)]).encode(), "invalid_webhook_events"),
        (json.dumps([event(subscriptionType="contact creation")]).encode(), "invalid_webhook_events"),
    ],
)
def test_bodies_that_are_not_event_arrays_are_400s(body: bytes, code: str):
    # When such a body is parsed, Then it is a 400 with its code
    with pytest.raises(Invalid) as raised:
        parse_events(body)
    assert raised.value.code == code


def test_a_refused_event_s_details_name_the_field_and_never_the_value():
    # Given an event whose objectId is a secret-looking string
    body = json.dumps([event(objectId="ada@example.com")]).encode()
    # When it is parsed
    with pytest.raises(Invalid) as raised:
        parse_events(body)
    # Then the details say where and which rule, and the value appears nowhere
    assert raised.value.details == [{"loc": [0, "objectId"], "type": "int_parsing"}]
    assert "ada@example.com" not in str(raised.value) + repr(raised.value.details)


def test_at_most_100_events_and_a_body_size_limit():
    # Then 100 events parse, and a body over the limit is a 413 before it is read
    assert len(parse_events(json.dumps([event(eventId=i) for i in range(100)]).encode())) == 100
    with pytest.raises(PayloadTooLarge):
        parse_events(b" " * (MAX_BODY_BYTES + 1))


def test_events_from_another_portal_are_refused_when_the_portal_is_given():
    body = json.dumps([event(portalId=33), event(eventId=2, portalId=34)]).encode()
    # Then without a portal both parse; with portal 33 the body is a 403
    assert [e.portal_id for e in parse_events(body)] == [33, 34]
    with pytest.raises(Forbidden) as raised:
        parse_events(body, portal_id=33)
    assert raised.value.code == "portal_mismatch"


def test_unseen_drops_repeats_across_and_within_deliveries():
    events = parse_events(json.dumps([event(eventId=1), event(eventId=2), event(eventId=1)]).encode())
    assert [e.event_id for e in unseen(events, [])] == [1, 2]
    assert [e.event_id for e in unseen(events, {1})] == [2]
