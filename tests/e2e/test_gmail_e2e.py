"""Gmail through the local runner with the Google double, as `make run` wires them: connect by
the OAuth redirect chain, then Pub/Sub pushes reach /webhooks/gmail and queue syncs.

(The Gmail sync itself lands in part 2; here the sync function only takes the queued work.)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.google import GoogleDouble
from local.google.pubsub import PushRequest
from local.google_wiring import TOPIC
from local.runner import Runner
from tests.e2e.conftest import GmailRunner, call
from tests.integration.local_google.conftest import rfc5322

USER = "ada@example.com"
TENANT = "gmail-e2e"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """One GET without following redirects (a browser's hop)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=60) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


@pytest.fixture(scope="module")
def google(gmail_runner: GmailRunner) -> GoogleDouble:
    """The shared runner's Google double (tests/e2e/conftest.py), with this module's user."""
    gmail_runner.double.add_user(USER, "Ada Lovelace")
    # Pub/Sub waits 10 s for an answer, then redelivers later: on a loaded test machine a cold
    # sandbox (imports, google-auth, Google's certs) can take longer. One forged push first,
    # as a deployed webhook is kept warm by the pushes it answers.
    assert (
        post_push(gmail_runner, gmail_runner.double.pubsub.forge(TOPIC, USER, "1", "bad_signature"))[0] == 401
    )
    return gmail_runner.double


def post_push(runner: Runner, push: PushRequest) -> tuple[int, dict[str, Any]]:
    """A push POSTed to the runner's /webhooks/gmail: the status and the JSON error body, if any."""
    request = urllib.request.Request(
        runner.url + "/webhooks/gmail", data=push.body, headers=push.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def waiting(runner: Runner) -> int:
    """How many messages wait on the SyncQueue (counted without receiving them)."""
    attributes = runner.boto3_client("sqs").get_queue_attributes(
        QueueUrl=runner.queue_url("SyncQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_connect_by_the_oauth_redirect_chain_then_pushes_queue_syncs(
    gmail_runner: Runner, google: GoogleDouble
) -> None:
    token = gmail_runner.token(tenant=TENANT, role="member", sub="ada-user")

    # (the double and the SyncQueue are shared with other modules: counted from here)
    delivered, queued = len(google.pubsub.flush()), waiting(gmail_runner)
    # Given a member who asks the runner for the consent URL
    status, started = call(gmail_runner, "GET", f"/oauth/gmail/start?login_hint={USER}", token)
    assert status == 200, started
    url = started["authorization_url"]
    assert url.startswith(google.authorize_url)

    # When the browser opens it: the double consents and redirects to the runner's callback
    status, headers, _ = get(url)
    assert status == 302
    callback = headers["Location"]
    assert urlsplit(callback).netloc == urlsplit(gmail_runner.url).netloc
    status, _, body = get(callback)

    # Then the callback connected the mailbox (no front-end URL locally: the outcome as JSON)
    assert status == 200, body
    outcome = json.loads(body)
    assert outcome["outcome"] == "connected"
    account_id = outcome["account_id"]
    status, listed = call(gmail_runner, "GET", "/accounts", token)
    assert [(a["account_id"], a["provider"], a["address"]) for a in listed["items"]] == [
        (account_id, "gmail", USER)
    ]

    # And the watch's first notification reached /webhooks/gmail, was acknowledged and queued a
    # sync beside the connect's own
    deliveries = google.pubsub.flush()[delivered:]
    assert [d.status for d in deliveries] == [204]
    assert waiting(gmail_runner) == queued + 2

    # When new mail arrives in Gmail
    google.advance(2)  # Gmail sends a user at most one notification a second
    google.deliver(USER, rfc5322(subject="A new quote"))
    deliveries = google.pubsub.flush()[delivered:]

    # Then the push is acknowledged and one more sync of the account waits on the SyncQueue
    assert [d.status for d in deliveries] == [204, 204]
    assert waiting(gmail_runner) == queued + 3

    # And the sync function takes the work (Gmail sync itself comes in part 2)
    gmail_runner.drain()
    assert waiting(gmail_runner) == 0
    status, account = call(gmail_runner, "GET", f"/accounts/{account_id}/status", token)
    assert status == 200
    assert account["queued_at"] is None


def test_a_forged_push_to_the_runner_is_refused(gmail_runner: Runner, google: GoogleDouble) -> None:
    # Given a push signed with a key Google never published
    before = waiting(gmail_runner)
    forged = google.pubsub.forge(TOPIC, USER, "2", "bad_signature")
    # When it reaches the runner
    status, body = post_push(gmail_runner, forged)
    # Then it is refused with its reason and nothing is queued
    assert status == 401
    assert body["error"]["details"] == {"reason": "bad_signature"}
    assert waiting(gmail_runner) == before
