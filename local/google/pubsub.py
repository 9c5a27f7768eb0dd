"""Cloud Pub/Sub push delivery, as Gmail notifications reach a webhook.

Sources [D]: the Gmail push guide (notification body, `data` = {"emailAddress", "historyId"}),
cloud.google.com/pubsub/docs/authenticate-push-subscriptions and the stored
`pubsub/push_request_with_oidc.example.http` / `jwt_claims.example.json` (OIDC token: RS256, header
`kid`, claims iss/aud/azp/sub/email/email_verified/iat/exp, one hour), the pubsub.v1 discovery
document (PushConfig.oidcToken: `audience` defaults to the push endpoint; RetryPolicy backoff 10 s
to 600 s; ackDeadlineSeconds 10 s) and the Pub/Sub ack rule (102, 200, 201, 202, 204 acknowledge;
anything else or a timeout is redelivered later). The push body also carries the snake_case
duplicates `message_id`/`publish_time` Pub/Sub adds [R].

Deliveries are real HTTP POSTs from a background thread, scheduled on the double's clock, so a
test can delay, drop or duplicate them and `flush()` to wait for them.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from local.google.ids import Ids
from local.google.keys import KeySet, stranger_key
from local.google.oauth import GOOGLE_ISSUER

log = logging.getLogger(__name__)

GMAIL_PUSH_ACCOUNT = "gmail-api-push@system.gserviceaccount.com"
ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
ACK_DEADLINE_SECONDS = 10
MIN_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(seconds=600)
RETENTION = timedelta(days=7)  # unacknowledged messages are kept 7 days by default [D]
TOKEN_LIFETIME = 3600
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
FORGERIES = (
    "bad_signature",
    "wrong_audience",
    "wrong_email",
    "expired",
    "unverified_email",
    "wrong_issuer",
    "unknown_kid",
)


@dataclass
class Topic:
    """A topic with one push subscription (or none: messages are then only recorded)."""

    name: str  # projects/{project}/topics/{topic}
    subscription: str
    push_endpoint: str | None
    audience: str | None
    service_account: str
    service_account_id: str
    gmail_can_publish: bool = True

    @property
    def project(self) -> str:
        return self.name.split("/")[1]

    @property
    def token_audience(self) -> str:
        return self.audience or self.push_endpoint or ""


@dataclass
class PubsubMessage:
    message_id: str
    data: bytes
    publish_time: datetime
    attributes: dict[str, str] = field(default_factory=dict)

    def push_body(self, subscription: str) -> dict[str, Any]:
        published = (
            self.publish_time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.publish_time.microsecond // 1000:03d}Z"
        )
        message: dict[str, Any] = {
            "data": base64.b64encode(self.data).decode("ascii"),
            "messageId": self.message_id,
            "message_id": self.message_id,
            "publishTime": published,
            "publish_time": published,
        }
        if self.attributes:
            message["attributes"] = self.attributes
        return {"message": message, "subscription": subscription}


@dataclass
class PushRequest:
    """One HTTP request as Pub/Sub sends it (also what `forge` returns for webhook tests)."""

    headers: dict[str, str]
    body: bytes
    message_id: str


@dataclass
class Delivery:
    message_id: str
    endpoint: str
    attempt: int
    status: int | None
    error: str | None
    at: datetime

    @property
    def acknowledged(self) -> bool:
        return self.status in ACK_STATUSES


@dataclass
class _Pending:
    due: datetime
    topic: Topic
    message: PubsubMessage
    attempt: int = 1


class PubSub:
    """Topics, publishing and push delivery with OIDC tokens signed by the double's keys."""

    def __init__(self, ids: Ids, keys: KeySet, now: Callable[[], datetime]) -> None:
        self.ids = ids
        self.keys = keys
        self.now = now
        self.topics: dict[str, Topic] = {}
        self.published: list[tuple[str, PubsubMessage]] = []
        self.deliveries: list[Delivery] = []
        self._pending: list[_Pending] = []
        self._drop = 0
        self._duplicate = 0
        self._delay: list[float] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ topics

    def create_topic(
        self,
        name: str,
        push_endpoint: str | None = None,
        audience: str | None = None,
        service_account: str = "mailbridge-push@mailbridge-local.iam.gserviceaccount.com",
        gmail_can_publish: bool = True,
    ) -> Topic:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "topics" or not parts[1] or not parts[3]:
            raise ValueError("a topic is named projects/{project}/topics/{topic}")
        topic = Topic(
            name=name,
            subscription=f"projects/{parts[1]}/subscriptions/{parts[3]}-push",
            push_endpoint=push_endpoint,
            audience=audience,
            service_account=service_account,
            service_account_id=self.ids.digits(21),
            gmail_can_publish=gmail_can_publish,
        )
        self.topics[name] = topic
        return topic

    # ------------------------------------------------------------------ publishing

    def publish(
        self, topic_name: str, data: dict[str, Any], attributes: dict[str, str] | None = None
    ) -> PubsubMessage:
        topic = self.topics[topic_name]
        message = PubsubMessage(
            message_id=self.ids.digits(16),
            data=json.dumps(data).encode(),
            publish_time=self.now(),
            attributes=dict(attributes or {}),
        )
        with self._cond:
            self.published.append((topic_name, message))
            if topic.push_endpoint is None:
                return message
            if self._drop:
                self._drop -= 1
                return message
            due = self.now() + timedelta(seconds=self._delay.pop(0) if self._delay else 0)
            copies = 1
            if self._duplicate:
                self._duplicate -= 1
                copies = 2
            for _ in range(copies):
                self._pending.append(_Pending(due=due, topic=topic, message=message))
            self._cond.notify_all()
        return message

    def drop_next(self, count: int = 1) -> None:
        """The next `count` messages are lost (never pushed)."""
        with self._cond:
            self._drop += count

    def duplicate_next(self, count: int = 1) -> None:
        """The next `count` messages are pushed twice with the same messageId."""
        with self._cond:
            self._duplicate += count

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """The next `count` messages are pushed only once the clock has moved `seconds` on."""
        with self._cond:
            self._delay.extend([seconds] * count)

    # ------------------------------------------------------------------ tokens

    def oidc_claims(self, topic: Topic) -> dict[str, Any]:
        iat = int(self.now().timestamp())
        return {
            "aud": topic.token_audience,
            "azp": topic.service_account_id,
            "email": topic.service_account,
            "email_verified": True,
            "exp": iat + TOKEN_LIFETIME,
            "iat": iat,
            "iss": GOOGLE_ISSUER,
            "sub": topic.service_account_id,
        }

    def token(self, topic: Topic, forgery: str | None = None) -> str:
        """A push OIDC token; `forgery` names one of FORGERIES to get a token that must be refused."""
        claims = self.oidc_claims(topic)
        signer = self.keys.current
        kid: str | None = None
        if forgery == "bad_signature":
            signer, kid = stranger_key(self.now()), self.keys.current.kid
        elif forgery == "unknown_kid":
            signer = stranger_key(self.now())
        elif forgery == "wrong_audience":
            claims["aud"] = "https://attacker.example/push"
        elif forgery == "wrong_email":
            claims["email"] = "someone-else@attacker-project.iam.gserviceaccount.com"
        elif forgery == "expired":
            claims["iat"] -= 2 * TOKEN_LIFETIME
            claims["exp"] = claims["iat"] + TOKEN_LIFETIME
        elif forgery == "unverified_email":
            claims["email_verified"] = False
        elif forgery == "wrong_issuer":
            claims["iss"] = "https://issuer.attacker.example"
        elif forgery is not None:
            raise ValueError(f"unknown forgery {forgery!r}; one of {FORGERIES}")
        return signer.sign(claims, kid=kid)

    def request(self, topic: Topic, message: PubsubMessage, forgery: str | None = None) -> PushRequest:
        body = json.dumps(message.push_body(topic.subscription)).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token(topic, forgery)}",
            "User-Agent": USER_AGENT,
        }
        return PushRequest(headers=headers, body=body, message_id=message.message_id)

    def forge(
        self,
        topic_name: str,
        email_address: str,
        history_id: str,
        forgery: str | None,
        message_id: str | None = None,
    ) -> PushRequest:
        """A push request for webhook tests, never delivered by the double itself."""
        message = PubsubMessage(
            message_id=message_id or self.ids.digits(16),
            data=json.dumps({"emailAddress": email_address, "historyId": history_id}).encode(),
            publish_time=self.now(),
        )
        return self.request(self.topics[topic_name], message, forgery)

    # ------------------------------------------------------------------ delivery

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="google-double-pubsub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._take_due()
            if item is None:
                with self._cond:
                    self._cond.wait(timeout=0.05)
                continue
            self._deliver(item)

    def _take_due(self) -> _Pending | None:
        with self._cond:
            now = self.now()
            for index, item in enumerate(self._pending):
                if item.due <= now:
                    self._in_flight += 1
                    return self._pending.pop(index)
            return None

    def _deliver(self, item: _Pending) -> None:
        endpoint = item.topic.push_endpoint or ""
        push = self.request(item.topic, item.message)
        status: int | None = None
        error: str | None = None
        try:
            request = urllib.request.Request(endpoint, data=push.body, headers=push.headers, method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=ACK_DEADLINE_SECONDS) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            error = type(exc).__name__
        with self._cond:
            self.deliveries.append(
                Delivery(item.message.message_id, endpoint, item.attempt, status, error, self.now())
            )
            if status not in ACK_STATUSES and self.now() - item.message.publish_time < RETENTION:
                backoff = min(MIN_BACKOFF * 2 ** (item.attempt - 1), MAX_BACKOFF)
                self._pending.append(
                    _Pending(self.now() + backoff, item.topic, item.message, item.attempt + 1)
                )
            self._in_flight -= 1
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> list[Delivery]:
        """Deliver every push that is due now and wait for them; returns all deliveries so far."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                item = self._take_due()
                if item is not None:
                    self._deliver(item)
                    continue
                with self._cond:
                    if self._in_flight == 0 and not any(p.due <= self.now() for p in self._pending):
                        return list(self.deliveries)
                    self._cond.wait(timeout=0.05)
            raise TimeoutError("pushes still in flight")
        finally:
            timer.cancel()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)
