"""Gmail watch + Pub/Sub push on the double: payloads, OIDC tokens, certs, forged and faulty pushes."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography import x509

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.pubsub import FORGERIES
from tests.integration.local_google.conftest import HTTP, USER, Gmail, PushReceiver, rfc5322

TOPIC = "projects/mailbridge-local/topics/gmail"
PUSH_ACCOUNT = "mailbridge-push@mailbridge-local.iam.gserviceaccount.com"


def verify_push(token: str, jwks_url: str, audience: str) -> dict[str, object]:
    """What the webhook will check: signature by a served key, iss, aud, exp/iat, email, email_verified."""
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token).key
    claims: dict[str, object] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer="https://accounts.google.com",
        leeway=10,  # the tests move the double's clock a few seconds ahead of real time
        options={"require": ["exp", "iat", "iss", "aud", "email"]},
    )
    if claims["email"] != PUSH_ACCOUNT or claims.get("email_verified") is not True:
        raise jwt.InvalidTokenError("not the push service account")
    return claims


@pytest.fixture
def watched(google: GoogleDouble, gmail: Gmail, receiver: PushReceiver, clock: ManualClock) -> Gmail:
    google.create_topic(TOPIC, push_endpoint=receiver.url)
    assert gmail.post("/watch", {"topicName": TOPIC, "labelIds": ["INBOX"]}).status_code == 200
    google.pubsub.flush()
    receiver.received.clear()
    clock.advance(1)
    return gmail


def test_watch_answers_history_id_and_a_seven_day_expiration(
    google: GoogleDouble, gmail: Gmail, receiver: PushReceiver, clock: ManualClock
) -> None:
    # Given a topic with a push subscription
    google.create_topic(TOPIC, push_endpoint=receiver.url)

    # When the mailbox is watched
    answer = gmail.post(
        "/watch", {"topicName": TOPIC, "labelIds": ["INBOX"], "labelFilterBehavior": "INCLUDE"}
    )
    google.pubsub.flush()

    # Then historyId and expiration (epoch ms, ~7 days) are strings, and a first push came at once
    body = answer.json()
    assert body["historyId"] == str(google.history_id(USER))
    expected = int(clock.now().timestamp() * 1000) + 7 * 86400 * 1000
    assert int(body["expiration"]) == expected
    assert receiver.data(0) == {"emailAddress": USER, "historyId": body["historyId"]}


def test_watch_refuses_unusable_topics(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a topic Gmail may not publish to
    google.create_topic("projects/mailbridge-local/topics/locked", gmail_can_publish=False)

    # When watch names another project's topic, an unknown topic, or the locked one
    foreign = gmail.post("/watch", {"topicName": "projects/other/topics/gmail"})
    unknown = gmail.post("/watch", {"topicName": "projects/mailbridge-local/topics/nope"})
    locked = gmail.post("/watch", {"topicName": "projects/mailbridge-local/topics/locked"})

    # Then 400, 404 and 403, as Gmail answers them
    assert (foreign.status_code, unknown.status_code, locked.status_code) == (400, 404, 403)


def test_new_mail_is_pushed_like_pubsub_does(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver
) -> None:
    # Given a watched mailbox
    # When mail arrives
    google.deliver(USER, rfc5322())
    google.pubsub.flush()

    # Then one push arrives: Pub/Sub's JSON body, Gmail's data, a bearer OIDC token
    [push] = receiver.received
    assert push.headers["content-type"] == "application/json"
    message = push.body["message"]
    assert set(push.body) == {"message", "subscription"}
    assert push.body["subscription"] == "projects/mailbridge-local/subscriptions/gmail-push"
    assert message["messageId"].isdigit()
    assert message["publishTime"].endswith("Z")
    assert receiver.data(0) == {"emailAddress": USER, "historyId": str(google.history_id(USER))}
    assert push.headers["authorization"].startswith("Bearer ")


def test_push_token_verifies_against_served_jwks_and_certs(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver
) -> None:
    # Given a push delivered to the receiver (audience = the push endpoint, by default)
    google.deliver(USER, rfc5322())
    google.pubsub.flush()
    token = receiver.received[0].headers["authorization"].removeprefix("Bearer ")

    # When it is verified against the v3 JWKS and against the v1 PEM certificates
    claims = verify_push(token, google.jwks_url, audience=receiver.url)
    header = jwt.get_unverified_header(token)
    certs = HTTP.get(google.certs_url).json()
    public_key = x509.load_pem_x509_certificate(certs[header["kid"]].encode()).public_key()
    again = jwt.decode(token, public_key, algorithms=["RS256"], audience=receiver.url, leeway=10)  # type: ignore[arg-type]

    # Then both agree and the claims are Google's
    assert header["alg"] == "RS256"
    assert again == claims
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email_verified"] is True
    assert claims["sub"] == claims["azp"]
    assert int(str(claims["exp"])) - int(str(claims["iat"])) == 3600


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_pushes_fail_verification(google: GoogleDouble, receiver: PushReceiver, forgery: str) -> None:
    # Given the topic and a forged push of each kind
    google.create_topic(TOPIC, push_endpoint=receiver.url)
    genuine = google.pubsub.forge(TOPIC, USER, "12345", forgery=None)
    forged = google.pubsub.forge(TOPIC, USER, "12345", forgery=forgery)

    # When both are verified the way the webhook will
    verify_push(genuine.headers["Authorization"].removeprefix("Bearer "), google.jwks_url, receiver.url)

    # Then the forged one is refused
    with pytest.raises(jwt.PyJWTError):
        verify_push(forged.headers["Authorization"].removeprefix("Bearer "), google.jwks_url, receiver.url)
    assert json.loads(forged.body)["message"]["messageId"]


def test_pushes_can_be_dropped_duplicated_and_delayed(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver, clock: ManualClock
) -> None:
    # Given three messages arriving a second apart: the first push dropped, the second duplicated,
    # the third delayed 30 s
    google.pubsub.drop_next()
    google.deliver(USER, rfc5322(subject="n0"))
    clock.advance(1)
    google.pubsub.duplicate_next()
    google.deliver(USER, rfc5322(subject="n1"))
    clock.advance(1)
    google.pubsub.delay_next(30)
    google.deliver(USER, rfc5322(subject="n2"))

    # When the due pushes are delivered, then the delayed one after 30 s
    google.pubsub.flush()
    before_delay = [r.body["message"]["messageId"] for r in receiver.received]
    clock.advance(30)
    google.pubsub.flush()

    # Then the first never came, the second came twice with one messageId, the third only later
    assert len(before_delay) == 2
    assert before_delay[0] == before_delay[1]
    assert len(receiver.received) == 3


def test_at_most_one_notification_per_second(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver, clock: ManualClock
) -> None:
    # When two messages arrive within the same second, then one more a second later
    google.deliver(USER, rfc5322(subject="a"))
    google.deliver(USER, rfc5322(subject="b"))
    clock.advance(1)
    google.deliver(USER, rfc5322(subject="c"))
    google.pubsub.flush()

    # Then the second notification was dropped, as Gmail documents (Pub/Sub does not promise order)
    assert len(receiver.received) == 2
    assert str(google.history_id(USER)) in {receiver.data(0)["historyId"], receiver.data(1)["historyId"]}
    assert google.notifications_dropped == 1


def test_label_filter_and_stop(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver, clock: ManualClock
) -> None:
    # Given a watch on INBOX only
    # When a message is stored outside the inbox, then the watch is stopped and mail arrives
    google.deliver(USER, rfc5322(), labels=["SENT"])
    clock.advance(1)
    assert watched.post("/stop").status_code == 204
    google.deliver(USER, rfc5322())
    google.pubsub.flush()

    # Then neither produced a push
    assert receiver.received == []


def test_unacknowledged_push_is_redelivered_after_backoff(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver, clock: ManualClock
) -> None:
    # Given an endpoint that answers 500 once
    receiver.statuses = [500]

    # When mail arrives, and the clock passes the 10 s minimum backoff
    google.deliver(USER, rfc5322())
    google.pubsub.flush()
    first = len(receiver.received)
    clock.advance(10)
    deliveries = google.pubsub.flush()

    # Then the same message is pushed again and acknowledged the second time
    assert first == 1
    assert len(receiver.received) == 2
    assert (
        receiver.received[0].body["message"]["messageId"] == receiver.received[1].body["message"]["messageId"]
    )
    assert [d.acknowledged for d in deliveries[-2:]] == [False, True]


def test_a_label_change_by_the_user_is_pushed(
    google: GoogleDouble, watched: Gmail, receiver: PushReceiver, clock: ManualClock
) -> None:
    # Given a message in the inbox
    message_id = google.deliver(USER, rfc5322())
    clock.advance(1)
    google.pubsub.flush()
    receiver.received.clear()

    # When the user marks it read in Gmail
    google.relabel(USER, message_id, remove=["UNREAD"])
    google.pubsub.flush()

    # Then a push names the new history id
    assert receiver.data(0)["historyId"] == str(google.history_id(USER))
