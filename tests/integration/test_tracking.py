"""Open and click tracking through the api function on moto: a tracked send, the public pixel
and link routes without a JWT, the stored hits, and `email.opened`/`email.clicked` for humans only."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from local.template import load_template
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.tracking import wiring as tracking_wiring
from tests.events import load_event
from tests.fixtures.accounts import seed_account, smtp_server
from tests.fixtures.aws import BusReader, Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT = "acme"
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
HTML = (
    '<html><body><p>Your <a href="https://shop.example.com/quote?id=7&amp;v=2">quote</a> and '
    '<a href="https://shop.example.com/terms">terms</a>, or <a href="mailto:sales@example.com">mail us</a>.'
    "</p></body></html>"
)
TEXT = "Your quote: https://shop.example.com/quote?id=7&v=2"


def _account(stack: Stack) -> str:
    env = stack.env("ApiFunction")
    account_id = "acc_" + uuid.uuid4().hex[:20]
    return seed_account(
        env["ACCOUNTS_TABLE"],
        env["DATA_KEY_ID"],
        tenant=TENANT,
        account_id=account_id,
        address=f"alice.{account_id[-6:]}@example.com",
        imap=smtp_server(username=f"alice{account_id[-6:]}"),
    ).account_id


def _api(
    invoke: Invoke, name: str, *, body: Any = None, role: str = "member", email_id: str | None = None
) -> tuple[int, Any]:
    event = load_event(name, tenant=TENANT, role=role, body=body)
    if email_id is not None:
        event["pathParameters"] = {"email_id": email_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{email_id}"
    response = invoke(event)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def _send(stack: Stack, invoke: Invoke, **fields: Any) -> tuple[str, EmailMessage]:
    """Send HTML + text mail; the email id and the stored message as the recipient gets it."""
    payload = {
        "account_id": _account(stack),
        "to": [{"address": "carol@customer.example"}],
        "subject": "Your quote",
        "html": HTML,
        "text": TEXT,
    } | fields
    status, accepted = _api(invoke, "api/send-email.json", body=payload)
    assert status == 202, accepted
    env = stack.env("ApiFunction")
    item = EmailStore(env["EMAILS_TABLE"]).get_email(TENANT, accepted["email_id"])
    assert item is not None
    raw = BlobStore(env["MAIL_BUCKET"]).get(str(item["raw_key"]))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return str(accepted["email_id"]), parsed


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None
    return str(body.get_content())


def _delivered(stack: Stack, email_id: str, ago: timedelta) -> None:
    """The outbox's `sent_at` (the send itself is test_outbox's business)."""
    EmailStore(stack.env("ApiFunction")["EMAILS_TABLE"]).update_email(
        TENANT, email_id, sent_at=(datetime.now(UTC) - ago).isoformat(), send_status="sent"
    )


def _hit(
    invoke: Invoke, kind: str, token: str, *, method: str = "GET", agent: str = BROWSER
) -> dict[str, Any]:
    name = {"o": "api/tracking-open.json", "c": "api/tracking-click.json"}[kind]
    event = load_event(name)
    path = f"/t/{kind}/{token}"
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} /t/{kind}/{{token}}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["pathParameters"] = {"token": token}
    event["headers"]["user-agent"] = agent
    event["requestContext"]["http"]["sourceIp"] = "203.0.113.24"
    assert "authorizer" not in event["requestContext"]  # no JWT at all
    return invoke(event)


def _tokens(html: str) -> tuple[str, list[str]]:
    opens = re.findall(r'src="https?://[^"]*/t/o/([^"]+)"', html)
    clicks = re.findall(r'href="https?://[^"]*/t/c/([^"]+)"', html)
    assert len(opens) == 1
    return opens[0], clicks


def _hits(stack: Stack, email_id: str) -> list[dict[str, Any]]:
    table = stack.table("TrackingTable")
    items = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :hit)",
        ExpressionAttributeValues={":pk": f"TENANT#{TENANT}#EMAIL#{email_id}", ":hit": "HIT#"},
    )["Items"]
    return list(items)


def _tracking_events(bus: BusReader) -> list[dict[str, Any]]:
    return [e for e in bus() if e["detail-type"] in ("email.opened", "email.clicked")]


def test_a_tracked_send_rewrites_links_adds_a_pixel_and_leaves_the_text(
    stack: Stack, invoke_api: Invoke
) -> None:
    # When a message is sent with tracking asked for
    email_id, message = _send(stack, invoke_api, tracking={"opens": True, "clicks": True})
    html = _part(message, "html")
    # Then the two web links point at /t/c/, the mailto link and the text part are untouched
    open_token, clicks = _tokens(html)
    assert len(clicks) == 2
    assert 'href="mailto:sales@example.com"' in html
    assert "shop.example.com" not in html
    assert _part(message, "plain").strip() == TEXT
    expected = HTML.replace(
        '"https://shop.example.com/quote?id=7&amp;v=2"', f'"https://{_host()}/t/c/{clicks[0]}"'
    ).replace('"https://shop.example.com/terms"', f'"https://{_host()}/t/c/{clicks[1]}"')
    pixel = (
        f'<img src="https://{_host()}/t/o/{open_token}" width="1" height="1" alt="" '
        'style="border:0;width:1px;height:1px">'
    )
    assert html.rstrip("\r\n") == expected.replace("</body>", pixel + "</body>")
    # And the stored link set keeps the original URLs, by index
    stored = stack.table("TrackingTable").get_item(
        Key={"pk": f"TENANT#{TENANT}#EMAIL#{email_id}", "sk": "MESSAGE"}
    )["Item"]
    assert stored["links"] == ["https://shop.example.com/quote?id=7&v=2", "https://shop.example.com/terms"]


def _host() -> str:
    return str(load_event("api/send-email.json")["requestContext"]["domainName"])


def test_without_the_tenant_default_or_an_override_nothing_is_tracked(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given the tenant's tracking flag off (the default), when a message is sent without override
    email_id, message = _send(stack, invoke_api)
    # Then the HTML is as written and no link set is stored
    assert "/t/o/" not in _part(message, "html")
    assert "shop.example.com/terms" in _part(message, "html")
    key = {"pk": f"TENANT#{TENANT}#EMAIL#{email_id}", "sk": "MESSAGE"}
    assert "Item" not in stack.table("TrackingTable").get_item(Key=key)


def test_the_tenant_default_applies_and_a_message_can_switch_one_part_off(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given an admin switched tracking on for the tenant
    status, _ = _api(invoke_api, "api/put-features.json", body={"tracking": True}, role="admin")
    assert status == 200
    # When a message overrides clicks only
    _, message = _send(stack, invoke_api, tracking={"clicks": False})
    html = _part(message, "html")
    # Then it has the pixel (the default) but its links are untouched
    assert "/t/o/" in html
    assert "/t/c/" not in html


def test_a_recipient_marked_do_not_track_is_never_tracked(stack: Stack, invoke_api: Invoke) -> None:
    # Given a contact who asked not to be tracked
    status, contact = _api(
        invoke_api,
        "api/crm-create-contact.json",
        body={"name": "Carol", "emails": [{"address": "carol@customer.example"}], "do_not_track": True},
    )
    assert status == 201, contact
    assert contact["do_not_track"] is True
    # When a message to her asks for tracking
    _, message = _send(stack, invoke_api, tracking={"opens": True, "clicks": True})
    # Then nothing in it is tracked
    html = _part(message, "html")
    assert "/t/o/" not in html
    assert "/t/c/" not in html


def test_public_routes_answer_without_a_jwt_and_store_classified_hits(
    stack: Stack, invoke_api: Invoke, bus_probe: BusReader
) -> None:
    # Given a tracked message delivered an hour ago
    email_id, message = _send(stack, invoke_api, tracking={"opens": True, "clicks": True})
    open_token, clicks = _tokens(_part(message, "html"))
    _delivered(stack, email_id, timedelta(hours=1))
    bus_probe()
    # When Gmail's image proxy fetches the pixel, then the reader's browser, then the reader clicks
    proxy = _hit(invoke_api, "o", open_token, agent=GMAIL_PROXY)
    human = _hit(invoke_api, "o", open_token)
    click = _hit(invoke_api, "c", clicks[1])
    # Then the pixel is a 1x1 GIF nobody may cache, and the click redirects to the stored URL
    for response in (proxy, human):
        assert response["statusCode"] == 200
        assert response["headers"]["Content-Type"] == "image/gif"
        assert response["headers"]["Cache-Control"] == "no-store, private"
        assert base64.b64decode(response["body"])[:6] == b"GIF89a"
    assert click["statusCode"] == 302
    assert click["headers"]["Location"] == "https://shop.example.com/terms"
    # And three hits are stored with their evidence and classification
    hits = sorted(_hits(stack, email_id), key=lambda h: h["at"])
    assert [(h["kind"], h["classification"]) for h in hits] == [
        ("open", "proxy"),
        ("open", "human"),
        ("click", "human"),
    ]
    assert hits[0]["reasons"] == ["google_image_proxy"]
    assert hits[2]["link"] == 1
    assert hits[1]["evidence"]["network"] == "203.0.113.0/24"
    assert hits[1]["evidence"]["user_agent"] == BROWSER
    assert float(hits[1]["evidence"]["seconds_since_delivery"]) >= 3600
    assert all(0 < int(h["ttl"]) - datetime.now(UTC).timestamp() <= 180 * 86400 for h in hits)
    # And only the human hits are announced, with their classification
    events = _tracking_events(bus_probe)
    assert sorted(e["detail-type"] for e in events) == ["email.clicked", "email.opened"]
    assert {e["detail"]["data"]["classification"] for e in events} == {"human"}
    assert all(e["detail"]["data"]["email_id"] == email_id for e in events)
    # And the email shows one machine open, one human open and one human click on the second link
    status, view = _api(invoke_api, "api/get-email.json", role="viewer", email_id=email_id)
    assert status == 200, view
    assert view["engagement"] == {
        "delivered": True,
        "bounces": 0,
        "human_opens": 1,
        "machine_opens": 1,
        "human_clicks": [
            {"link": 0, "url": "https://shop.example.com/quote?id=7&v=2", "human_clicks": 0},
            {"link": 1, "url": "https://shop.example.com/terms", "human_clicks": 1},
        ],
        "machine_clicks": 0,
        "replies": 0,
        "score": 24,
    }


def test_machine_hits_are_stored_but_not_announced(
    stack: Stack, invoke_api: Invoke, bus_probe: BusReader
) -> None:
    # Given a tracked message delivered a second ago
    email_id, message = _send(stack, invoke_api, tracking={"opens": True, "clicks": True})
    _, clicks = _tokens(_part(message, "html"))
    _delivered(stack, email_id, timedelta(seconds=1))
    bus_probe()
    # When a gateway checks a link with HEAD and then follows both at once
    head = _hit(invoke_api, "c", clicks[0], method="HEAD")
    _hit(invoke_api, "c", clicks[0])
    _hit(invoke_api, "c", clicks[1])
    # Then the HEAD is answered like a GET, every hit is a scanner's, and nothing is announced
    assert head["statusCode"] == 302
    assert {h["classification"] for h in _hits(stack, email_id)} == {"scanner"}
    assert "head_request" in next(
        h["reasons"] for h in _hits(stack, email_id) if h["evidence"]["method"] == "HEAD"
    )
    assert _tracking_events(bus_probe) == []


def _forge(token: str, **changes: Any) -> str:
    payload, tag = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) | changes
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return body.decode().rstrip("=") + "." + tag


def test_bad_tokens_get_the_same_pixel_and_a_404_page_never_a_redirect(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given two tracked messages
    first, message = _send(stack, invoke_api, tracking={"opens": True, "clicks": True})
    second, _ = _send(stack, invoke_api, tracking={"opens": True, "clicks": True}, subject="Other")
    open_token, clicks = _tokens(_part(message, "html"))
    bad = ["garbage", _forge(clicks[0], m=second), _forge(clicks[0], l=1), clicks[0] + "x"]
    # When the pixel is fetched with a bad token
    pixel = _hit(invoke_api, "o", _forge(open_token, m=second))
    good = _hit(invoke_api, "o", open_token)
    # Then the answer is the very same as for a good one
    assert {k: pixel[k] for k in ("statusCode", "headers", "body")} == {
        k: good[k] for k in ("statusCode", "headers", "body")
    }
    # And a bad click token is a 404 `link_not_found` without a Location, for GET and HEAD alike
    for token in bad:
        for method in ("GET", "HEAD"):
            response = _hit(invoke_api, "c", token, method=method)
            assert response["statusCode"] == 404, token
            assert json.loads(response["body"])["error"]["code"] == "link_not_found"
            assert "Location" not in response["headers"]
    # And nothing was recorded for the forged tokens: only the good open of the first message
    assert [h["kind"] for h in _hits(stack, first)] == ["open"]
    assert _hits(stack, second) == []


def test_hit_retention_is_the_configured_number_of_days(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given hits kept for 7 days (the template's TrackingHitRetentionDays)
    monkeypatch.setenv("TRACKING_HIT_RETENTION_DAYS", "7")
    tracking_wiring.reset()
    email_id, message = _send(stack, invoke_api, tracking={"opens": True})
    open_token, _ = _tokens(_part(message, "html"))
    # When the pixel is fetched
    _hit(invoke_api, "o", open_token)
    # Then the hit expires 7 days from now
    (hit,) = _hits(stack, email_id)
    expires_in = int(hit["ttl"]) - datetime.now(UTC).timestamp()
    assert 6 * 86400 < expires_in <= 7 * 86400


def test_automations_can_trigger_on_opens_and_clicks() -> None:
    template = load_template([Path(__file__).resolve().parents[2] / "template.yaml"])
    pattern = template.properties("AutomationsRule")["EventPattern"]
    assert {"email.opened", "email.clicked"} <= set(pattern["detail-type"])
