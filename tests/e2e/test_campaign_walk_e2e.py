"""Issue 17's acceptance walk through `python -m local` (as `make run` starts it): a tracked
template sent to a contact, the pixel fetched as Gmail's image proxy and as a browser, a link
clicked; the email shows one machine open, one human open and one human click; then RFC 8058
one-click unsubscribe without a session puts the contact on the suppression list.

(Campaign sending is another branch; "the next campaign skips that contact" joins at the merge.)
"""

from __future__ import annotations

import email
import email.policy
import http.client
import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from local.template import REGION
from mailbridge.campaigns import suppression
from mailbridge.campaigns.suppression import SuppressionDeps
from mailbridge.store.suppression import DynamoSuppressionStore
from tests.e2e.make_run import MakeRun, start_make_run
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER, SmtpSink
from tests.integration.dovecot import DovecotServer

pytestmark = pytest.mark.dovecot

TENANT = "walk"
CAROL = "carol.walk@customer.example"
# Gmail's image proxy, as Google documents and mail senders see it (Gmail Help, "Images in email")
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
SOON_AFTER_DELIVERY = 10.0  # mailbridge.tracking.classify: a hit sooner is a scanner's


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    started = start_make_run(tmp_path_factory.mktemp("campaign-walk"))
    try:
        yield started
    finally:
        started.stop()


def _moto(run: MakeRun, service: str) -> Any:
    return boto3.resource(
        service,  # type: ignore[call-overload]
        region_name=REGION,
        endpoint_url=run.endpoint_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _suppression_deps(run: MakeRun) -> SuppressionDeps:
    """What campaign sending uses, on the runner's moto: its CRM table and link-signing secret."""
    tables = [t.name for t in _moto(run, "dynamodb").tables.all() if "CrmTable" in t.name]
    (crm,) = tables
    secrets = run.boto3_client("secretsmanager")
    (arn,) = [s["ARN"] for s in secrets.list_secrets()["SecretList"] if "CalendarSecret" in s["Name"]]
    key = str(secrets.get_secret_value(SecretId=arn)["SecretString"]).encode()
    store = DynamoSuppressionStore(crm, _moto(run, "dynamodb").Table(crm))
    return SuppressionDeps(store=store, key=lambda: key, base_url=run.url)


def _fetch(url: str, agent: str) -> tuple[int, dict[str, str], bytes]:
    """One GET as a mail client or image proxy sends it, without following a redirect."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=60)
    try:
        connection.request("GET", parts.path, headers={"User-Agent": agent, "Accept": "*/*"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _html(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def test_the_acceptance_walk(run: MakeRun, dovecot_server: DovecotServer, smtp_sink: SmtpSink) -> None:
    token = run.token(TENANT, "owner")

    def call(method: str, path: str, body: Any = None) -> Any:
        answer = run.request(method, path, token, body)
        assert answer.status < 300, (method, path, answer.status, answer.body)
        return answer.json()

    # Given a connected mailbox that sends through the SMTP server, Carol as a contact, and a
    # template with a link
    user = dovecot_server.add_user()
    account = call(
        "POST",
        "/accounts",
        {
            "provider": "imap",
            "address": f"{user.name}@example.com",
            "imap": {
                "host": dovecot_server.host,
                "port": dovecot_server.imap_port,
                "security": "none",
                "username": user.name,
                "password": user.password,
            },
            "smtp": {
                "host": smtp_sink.host,
                "port": smtp_sink.plain_port,
                "security": "none",
                "username": SINK_USER,
                "password": SINK_PASSWORD,
            },
        },
    )
    carol = call("POST", "/crm/contacts", {"name": "Carol Walk", "emails": [{"address": CAROL}]})
    template = call(
        "POST",
        "/templates",
        {
            "name": "Spring offer",
            "subject": "Spring offer for {{ contact.first_name }}",
            "html": "<p>Hi {{ contact.first_name }}, see "
            '<a href="https://shop.example.com/spring">the offer</a>.</p>',
            "text": "Hi {{ contact.first_name }}, see https://shop.example.com/spring",
            "variables": [{"name": "contact.first_name", "default": "there"}],
        },
    )
    # When the template is sent to her with tracking on
    sent = call(
        "POST",
        "/emails/send",
        {
            "account_id": account["account_id"],
            "to": [{"address": CAROL}],
            "template_id": template["template_id"],
            "tracking": {"opens": True, "clicks": True},
        },
    )
    email_id = sent["email_id"]
    (delivered,) = wait_for(
        "the outbox to deliver", lambda: [m for m in smtp_sink.messages if CAROL in m.rcpt_tos]
    )
    html = _html(delivered.raw)
    (pixel,) = re.findall(r'src="(https?://[^"]*/t/o/[^"]+)"', html)
    (link,) = re.findall(r'href="(https?://[^"]*/t/c/[^"]+)"', html)
    wait_for("the email to be sent", lambda: call("GET", f"/emails/{email_id}")["status"] == "sent")
    seen_sent = time.monotonic()
    # And Gmail's image proxy fetches the pixel at once, as it does on delivery
    proxy = _fetch(pixel, GMAIL_PROXY)
    # And Carol, later than a scanner would, opens it in her browser and clicks the link
    wait_for("a human's pace", lambda: time.monotonic() > seen_sent + SOON_AFTER_DELIVERY + 1, timeout=60)
    browser = _fetch(pixel, BROWSER)
    click = _fetch(link, BROWSER)
    assert (proxy[0], browser[0]) == (200, 200)
    assert proxy[2][:6] == b"GIF89a"
    assert click[0] == 302
    assert click[1]["Location"] == "https://shop.example.com/spring"
    # Then the email shows one machine open, one human open and one human click
    engagement = call("GET", f"/emails/{email_id}")["engagement"]
    assert engagement["machine_opens"] == 1
    assert engagement["human_opens"] == 1
    assert [(c["url"], c["human_clicks"]) for c in engagement["human_clicks"]] == [
        ("https://shop.example.com/spring", 1)
    ]
    # When Carol's mail provider POSTs the one-click unsubscribe of her campaign message, with
    # no Authorization header
    deps = _suppression_deps(run)
    header = suppression.unsubscribe_headers(deps, TENANT, "cmp_spring", CAROL)["List-Unsubscribe"]
    url = header.strip("<>")
    assert url.startswith(f"{run.url}/u/")
    unsubscribed = run.request(
        "POST",
        url[len(run.url) :],
        raw=b"List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert unsubscribed.status == 200, unsubscribed.body
    # Then she is on the tenant's suppression list, and campaign sending sees it
    listed = call("GET", "/crm/suppressions")["items"]
    assert [(i["address"], i["reason"], i["source"]) for i in listed] == [
        (CAROL, "unsubscribed", "cmp_spring")
    ]
    assert suppression.suppressed(deps, TENANT, [CAROL, "dave@customer.example"]) == {CAROL}
    # When the next campaign goes to her
    admin = run.token(TENANT, "admin")
    assert run.request("PUT", "/features", admin, {"campaigns": True}).status == 200
    campaign = call("POST", "/crm/campaigns", {"name": "Summer"})
    path = f"/crm/campaigns/{campaign['campaign_id']}"
    fields = {
        "template_id": template["template_id"],
        "audience": {"contact_ids": [carol["contact_id"]]},
        "account_id": account["account_id"],
    }
    call("PATCH", path, fields)
    call("POST", f"{path}/send")
    # Then its send-status reports her skipped as suppressed, and she receives nothing more
    status = wait_for("the campaign's run to finish", lambda: _done(call("GET", f"{path}/send-status")))
    assert (status["counts"]["queued"], status["counts"]["skipped"]) == (0, {"suppressed": 1})
    assert [m for m in smtp_sink.messages if CAROL in m.rcpt_tos] == [delivered]


def _done(status: Any) -> Any:
    return status if status["state"] == "done" else None
