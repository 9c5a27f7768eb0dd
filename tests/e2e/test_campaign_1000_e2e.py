"""Issue 17's campaign test through the local runner: a campaign of 1,000 contacts is queued by
the outbox function chunk by chunk (ten OutboxQueue messages), survives its sandbox being
killed in the middle of a chunk (SIGKILL, as Lambda ends a sandbox; SQS redelivers the chunk
after its visibility timeout), gives every contact exactly one email and one schedule spaced by
the throttle, skips the suppressed and the unsubscribed (one-click, no session), and the
runner's clock then fires the first throttle slots, and only those, over SMTP.

The contacts are written straight into the runner's CRM table (the items `POST /crm/contacts`
writes, by BatchWriteItem): a thousand API calls would cost minutes and test nothing here."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.clock import ManualClock
from local.functions import ROOT
from local.runner import Runner
from mailbridge.campaigns import suppression
from mailbridge.campaigns.suppression import SuppressionDeps
from mailbridge.crm.models import Contact
from mailbridge.store.crm import contact_item
from mailbridge.store.keys import email_sk
from mailbridge.store.suppression import DynamoSuppressionStore
from tests.e2e.conftest import call, connect_mailbox
from tests.e2e.test_campaign_e2e import TEMPLATE
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot

TENANT = "campaign-1000"
CONTACTS = 1000
SUPPRESSED = (10, 420)  # on the suppression list before the send (a bounce, an admin)
UNSUBSCRIBED = (5, 777)  # unsubscribed by one-click before the send
THROTTLE = 500  # an IMAP account's ceiling: one send every 8 s
SPACING = timedelta(seconds=8)
AHEAD = 6 * 3600  # schedule_at: later than any drain, however busy the machine
FIRED = 6  # slots the clock is moved past at the end: those, and no more, are sent
CRASH_AFTER = 450  # recipients recorded when the sandbox is killed: in the middle of chunk 5


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """A runner of its own (as `mail_runner` is made), not the shared one: this module is the
    longest of the e2e tier, so on a worker of its own it runs beside the mail_runner group
    instead of after it, and the sandbox it kills is no other module's."""
    with Runner(
        templates=[ROOT / "template.yaml"],
        port=0,
        clock=ManualClock(datetime.now(UTC).replace(microsecond=0)),
        parameters={"AllowPrivateMailHosts": "true"},
    ) as started:
        yield started


def _address(n: int) -> str:
    return f"person{n}@thousand.example"


def _crm(runner: Runner) -> Any:
    return _table(runner, runner.physical_name("CrmTable"))


def _table(runner: Runner, name: str) -> Any:
    import boto3

    from local.template import REGION

    resource = boto3.resource(
        "dynamodb",
        region_name=REGION,
        endpoint_url=runner.endpoint_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return resource.Table(name)


def _seed_contacts(runner: Runner) -> list[str]:
    """1,000 contacts as `POST /crm/contacts` stores them (record and address lookup items)."""
    table, now, ids = _crm(runner), datetime.now(UTC), []
    with table.batch_writer() as batch:
        for n in range(CONTACTS):
            contact = Contact.model_validate(
                {
                    "contact_id": f"ct_{n:012x}{'0' * 14}",
                    "name": f"Person {n}",
                    "emails": [{"address": _address(n), "primary": True}],
                    "created_at": now,
                    "updated_at": now,
                    "created_by": "seed",
                    "version": 1,
                }
            )
            batch.put_item(Item=contact_item(TENANT, contact))
            batch.put_item(
                Item={
                    "pk": f"TENANT#{TENANT}",
                    "sk": email_sk(_address(n)),
                    "address": _address(n),
                    "contact_id": contact.contact_id,
                    "company_id": None,
                }
            )
            ids.append(contact.contact_id)
    return ids


def _link_deps(runner: Runner) -> SuppressionDeps:
    """The one-click links' signing key, as the api function reads it (the runner's secret)."""
    secrets = runner.boto3_client("secretsmanager")
    (arn,) = [s["ARN"] for s in secrets.list_secrets()["SecretList"] if "CalendarSecret" in s["Name"]]
    key = str(secrets.get_secret_value(SecretId=arn)["SecretString"]).encode()
    table = _crm(runner)
    return SuppressionDeps(
        store=DynamoSuppressionStore(table.name, table), key=lambda: key, base_url=runner.url
    )


def _one_click(runner: Runner, url: str) -> int:
    """The mail provider's RFC 8058 POST: no Authorization header."""
    request = urllib.request.Request(
        url,
        data=b"List-Unsubscribe=One-Click",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def _recorded(runner: Runner, campaign_id: str) -> int:
    table = _crm(runner)
    from boto3.dynamodb.conditions import Key

    answer = table.query(
        KeyConditionExpression=Key("pk").eq(f"TENANT#{TENANT}")
        & Key("sk").begins_with(f"CAMPAIGNRCPT#{campaign_id}#"),
        Select="COUNT",
    )
    return int(answer["Count"])


def _kill_outbox_mid_chunk(runner: Runner, campaign_id: str) -> bool:
    """Tick the runner while watching the recipients recorded; once CRASH_AFTER are, SIGKILL the
    outbox function's sandboxes (the chunk in flight dies there). True when one was killed busy."""
    assert runner._pool is not None
    outbox = runner._pool.functions["OutboxFunction"]
    killed = False
    ticks = 0
    while ticks < 40 and not killed:
        ticking = threading.Thread(target=runner.pump.tick)
        ticking.start()
        ticks += 1
        while ticking.is_alive():
            if _recorded(runner, campaign_id) >= CRASH_AFTER:
                for worker in list(outbox._workers):
                    if worker.process.poll() is None:
                        os.kill(worker.process.pid, signal.SIGKILL)
                        killed = True
                break
            time.sleep(0.05)
        ticking.join()
    return killed


def test_a_campaign_of_1000_contacts_through_the_runner(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> None:
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER

    started = time.monotonic()
    admin = runner.token(tenant=TENANT, role="admin")
    token = runner.token(tenant=TENANT, role="member")
    assert call(runner, "PUT", "/features", admin, {"campaigns": True})[0] == 200
    smtp = {
        "host": smtp_sink.host,
        "port": smtp_sink.plain_port,
        "security": "none",
        "username": SINK_USER,
        "password": SINK_PASSWORD,
    }
    account_id = connect_mailbox(runner, token, dovecot_server, dovecot_user, smtp)
    runner.drain()
    before = len(smtp_sink.messages)
    # Given 1,000 contacts, two of them on the suppression list and two unsubscribed by one-click
    ids = _seed_contacts(runner)
    for n in SUPPRESSED:
        assert call(runner, "POST", "/crm/suppressions", admin, {"address": _address(n)})[0] == 201
    links = _link_deps(runner)
    for n in UNSUBSCRIBED:
        header = suppression.unsubscribe_headers(links, TENANT, "cp_earlier", _address(n))
        assert _one_click(runner, header["List-Unsubscribe"].strip("<>")) == 200
    # And a campaign to all of them, scheduled ahead, at 500 sends an hour
    template_id = call(runner, "POST", "/templates", token, TEMPLATE)[1]["template_id"]
    campaign_id = call(runner, "POST", "/crm/campaigns", token, {"name": "Thousand"})[1]["campaign_id"]
    schedule_at = runner.clock.now().replace(microsecond=0) + timedelta(seconds=AHEAD)
    fields = {
        "template_id": template_id,
        "audience": {"contact_ids": ids},
        "account_id": account_id,
        "throttle_per_hour": THROTTLE,
        "variables": {"offer": "20% off"},
        "schedule_at": schedule_at.isoformat(),
    }
    assert call(runner, "PATCH", f"/crm/campaigns/{campaign_id}", token, fields)[0] == 200
    # When it is sent, and the outbox's sandbox is killed in the middle of the fifth chunk
    assert call(runner, "POST", f"/crm/campaigns/{campaign_id}/send", token)[0] == 202
    assert _kill_outbox_mid_chunk(runner, campaign_id)
    crashed = call(runner, "GET", f"/crm/campaigns/{campaign_id}/send-status", token)[1]
    # And SQS redelivers that chunk after its visibility timeout, and the rest runs
    runner.advance(15 * 60)
    runner.drain(timeout=600)
    queued_at = time.monotonic()
    status = _send_status(runner, campaign_id, token)
    # Then the run stopped mid-way, and finished with every contact counted once
    assert crashed["state"] == "sending"
    assert crashed["counts"]["queued"] < CONTACTS - 4
    assert status["state"] == "done"
    assert status["counts"]["queued"] == CONTACTS - 4
    assert status["counts"]["skipped"] == {"suppressed": 4}
    # And each contact not skipped has exactly one email, scheduled once, in its own throttle slot
    emails = _campaign_emails(runner, campaign_id)
    recipients = Counter(a for item in emails for a in item["envelope_to"])
    skipped = {_address(n) for n in (*SUPPRESSED, *UNSUBSCRIBED)}
    assert recipients == {_address(n): 1 for n in range(CONTACTS) if _address(n) not in skipped}
    assert {item["send_status"] for item in emails} == {"scheduled"}
    assert {f"send-{item['email_id']}" for item in emails} <= set(_schedule_names(runner))
    times = sorted(datetime.fromisoformat(item["send_at"]) for item in emails)
    assert min(b - a for a, b in itertools.pairwise(times)) >= SPACING
    assert times[0] >= schedule_at
    # When the clock passes the first FIRED slots
    runner.advance((times[FIRED - 1] - runner.clock.now()).total_seconds() + 1)
    runner.drain(timeout=300)
    # Then those emails, and no others, went out over SMTP, one per recipient
    received = smtp_sink.messages[before:]
    last = times[FIRED - 1]
    fired = {i["envelope_to"][0] for i in emails if datetime.fromisoformat(i["send_at"]) <= last}
    assert Counter(r for m in received for r in m.rcpt_tos) == dict.fromkeys(fired, 1)
    assert len(fired) == FIRED
    print(
        f"campaign of {CONTACTS} through the runner: queued (crash included) in "
        f"{queued_at - started:.0f} s, {FIRED} slots fired in {time.monotonic() - queued_at:.0f} s"
    )


def _send_status(runner: Runner, campaign_id: str, token: str) -> Any:
    """GET send-status (it reads the 996 queued emails' status: on a machine loaded many times
    over, one attempt can outlast the api function's 29 s timeout; a 5xx is asked again)."""
    for _ in range(3):
        try:
            code, body = call(runner, "GET", f"/crm/campaigns/{campaign_id}/send-status", token)
        except TimeoutError:
            continue
        if code == 200:
            return body
        assert code >= 500, body
    raise AssertionError("send-status did not answer")


def _campaign_emails(runner: Runner, campaign_id: str) -> list[dict[str, Any]]:
    """The emails of the run's recipients (their `email_id`), as the emails table holds them."""
    from boto3.dynamodb.conditions import Key

    from mailbridge.store.emails import EmailStore

    crm, ids, start = _crm(runner), [], None
    while True:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"TENANT#{TENANT}")
            & Key("sk").begins_with(f"CAMPAIGNRCPT#{campaign_id}#"),
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = crm.query(**kwargs)
        ids += [str(i["email_id"]) for i in page["Items"] if i.get("email_id")]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    name = runner.physical_name("EmailsTable")
    store = EmailStore(name, _table(runner, name))
    found: dict[str, dict[str, Any]] = {}
    for first in range(0, len(ids), 100):
        found |= store.batch_get_emails(TENANT, ids[first : first + 100])
    assert len(found) == len(ids)
    return list(found.values())


def _schedule_names(runner: Runner) -> list[str]:
    client, names, token = runner.boto3_client("scheduler"), [], None
    while True:
        kwargs: dict[str, Any] = {"NamePrefix": "send-", "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        page = client.list_schedules(**kwargs)
        names += [s["Name"] for s in page["Schedules"]]
        token = page.get("NextToken")
        if not token:
            return names
