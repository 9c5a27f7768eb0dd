"""SalesforceDouble: the whole double as one object (HTTP server + one org + control methods).

    with SalesforceDouble(clock=ManualClock(), seed=1) as sf:
        app = sf.register_app(["http://127.0.0.1:3000/oauth/salesforce/callback"])
        contact_id = sf.create("Contact", LastName="Lovelace", Email="ada@example.com")
        httpx.post(sf.token_url, data={"response_type": "device_code", "client_id": app.client_id})

login.salesforce.com and the org's instance (`https://MyDomain.my.salesforce.com`) collapse onto
one port: `login_url` and `instance_url` are both `base_url`. The product's settings point at
`authorize_url`, `token_url`, `revoke_url` and read `instance_url` from the token answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from local.clock import Clock, RealClock
from local.double_server import Call, Delivery, HttpServer, Outgoing, Response, Router
from local.salesforce.bulk import BulkApi, BulkSettings
from local.salesforce.control import ControlApi
from local.salesforce.errors import RestError, SaveError
from local.salesforce.ids import Ids
from local.salesforce.login import LoginApi
from local.salesforce.oauth import ConnectedApp, DeviceGrant, OAuth, OAuthSettings
from local.salesforce.outbound import Outbound, OutboundAction
from local.salesforce.rest import ApiLimits, RestApi
from local.salesforce.schema import custom_field, to_json
from local.salesforce.store import Org

API_VERSION = "61.0"


@dataclass
class Faults:
    """The next N REST calls (whose path contains `match`) answer a 5xx."""

    pending: list[tuple[str | None, int]] = field(default_factory=list)

    def fail_next(self, count: int = 1, status: int = 503, match: str | None = None) -> None:
        if status not in (500, 502, 503):
            raise ValueError("faults are server errors: 500, 502 or 503")
        self.pending.extend([(match, status)] * count)

    def check(self, path: str) -> None:
        for index, (match, status) in enumerate(self.pending):
            if match is None or match in path:
                del self.pending[index]
                if status == 503:
                    raise RestError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
                raise RestError(
                    status,
                    "UNKNOWN_EXCEPTION",
                    "An unexpected error occurred. Please include this ErrorId if you contact support",
                )


class SalesforceDouble:
    """A faithful local Salesforce org: OAuth, REST, SOQL, composite, Bulk API 2.0, outbound messages."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seed: int = 0,
        api_version: str = API_VERSION,
        daily_api_requests: int = 100_000,
        session_seconds: int = 7200,
        device_interval: int = 5,
        bulk_queue_seconds: float = 1.0,
        bulk_records_per_second: float = 2000.0,
        username: str = "admin@mailbridge-dev.example",
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.lock = threading.RLock()
        self.ids = Ids(seed)
        self.api_version = api_version
        self.org = Org(self.ids, self.now)
        self.oauth = OAuth(
            self.ids,
            self.now,
            self.org.org_id,
            OAuthSettings(session_seconds=session_seconds, device_interval=device_interval),
        )
        self.oauth.users[self.org.user_id] = username
        self.oauth.signed_in = self.org.user_id
        self.limits = ApiLimits(daily=daily_api_requests)
        self.faults = Faults()
        self.bulk_settings = BulkSettings(bulk_queue_seconds, bulk_records_per_second)
        self.rest = RestApi(self)
        self.bulk = BulkApi(self, self.rest.guarded)
        self.outbound = Outbound(
            self.ids, self.org, self.now, lambda: self.base_url, api_version, self.oauth.mint, self.lock
        )
        router = Router(
            LoginApi(self).routes() + self.rest.routes() + self.bulk.routes() + ControlApi(self).routes(),
            self._not_found,
            self._not_allowed,
        )
        self._server = HttpServer(router, host, port, name="salesforce-double")

    @staticmethod
    def _not_found(_call: Call) -> Response:
        return RestError(404, "NOT_FOUND", "The requested resource does not exist").response()

    @staticmethod
    def _not_allowed(call: Call) -> Response:
        return RestError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{call.method}' not allowed.").response()

    # ------------------------------------------------------------------ lifecycle and URLs

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the clock on; bulk jobs progress and retries fall due at once."""
        self.clock.advance(seconds)
        self.tick()

    def tick(self) -> None:
        with self.lock:
            self.bulk.tick()

    def start(self) -> SalesforceDouble:
        self._server.start()
        self.outbound.outbox.start()
        return self

    def stop(self) -> None:
        self.outbound.outbox.stop()
        self._server.stop()

    def __enter__(self) -> SalesforceDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    login_url = base_url
    instance_url = base_url

    @property
    def authorize_url(self) -> str:
        return self.base_url + "/services/oauth2/authorize"

    @property
    def token_url(self) -> str:
        return self.base_url + "/services/oauth2/token"

    @property
    def revoke_url(self) -> str:
        return self.base_url + "/services/oauth2/revoke"

    @property
    def verification_url(self) -> str:
        return self.base_url + "/setup/connect"

    @property
    def rest_url(self) -> str:
        """`{instance_url}/services/data/v61.0` (the API version the double was made with)."""
        return f"{self.base_url}/services/data/v{self.api_version}"

    def urls(self) -> dict[str, str]:
        return {
            "login": self.base_url,
            "instance": self.base_url,
            "authorize": self.authorize_url,
            "token": self.token_url,
            "revoke": self.revoke_url,
            "verification": self.verification_url,
            "rest": self.rest_url,
            "bulk_ingest": self.rest_url + "/jobs/ingest",
            "bulk_query": self.rest_url + "/jobs/query",
            "control": self.base_url + "/__double__",
        }

    # ------------------------------------------------------------------ setup

    @property
    def org_id(self) -> str:
        return self.org.org_id

    @property
    def user_id(self) -> str:
        return self.org.user_id

    def register_app(
        self,
        callback_urls: Iterable[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: list[str] | None = None,
        require_secret: bool = True,
        device_flow: bool = True,
    ) -> ConnectedApp:
        """A connected app (consumer key and secret, callback URLs, OAuth scopes, device flow on/off)."""
        with self.lock:
            return self.oauth.register_app(
                list(callback_urls), client_id, client_secret, scopes, require_secret, device_flow
            )

    def approve_device(self, user_code: str, deny: bool = False) -> DeviceGrant:
        """The user enters `user_code` at the verification URI and allows (or denies) the app."""
        with self.lock:
            return self.oauth.approve_device(user_code, deny)

    def deny_consent(self, deny: bool = True) -> None:
        """The user clicks Deny on the authorization page: the redirect carries error=access_denied."""
        with self.lock:
            self.oauth.denies = deny

    def add_custom_field(
        self,
        object_name: str,
        name: str,
        kind: str = "text",
        length: int | None = None,
        label: str | None = None,
        external_id: bool = False,
        unique: bool = False,
        picklist: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Setup > Object Manager > Fields & Relationships > New: returns the field's describe entry."""
        with self.lock:
            sobject = self.org.sobject(object_name)
            if sobject is None:
                raise ValueError(f"unknown sObject {object_name}")
            if sobject.field(name) is not None:
                raise ValueError(f"{sobject.name} already has a field {name}")
            new = custom_field(name, kind, length, label, external_id, unique, tuple(picklist))
            sobject.add(new)
            for record in self.org.records[sobject.name].values():
                record.setdefault(new.name, new.default)
            return new.describe()

    # ------------------------------------------------------------------ a user works in Salesforce

    def create(self, object_name: str, **values: Any) -> str:
        """A record created in the UI (fires outbound messages); returns its id. Raises SaveError."""
        with self.lock:
            return str(self.org.create(self._type(object_name), values)["Id"])

    def update(self, object_name: str, record_id: str, **values: Any) -> None:
        with self.lock:
            self.org.update(self._type(object_name), record_id, values)

    def delete(self, object_name: str, record_id: str) -> None:
        with self.lock:
            self.org.delete(self._type(object_name), record_id)

    def record(self, object_name: str, record_id: str) -> dict[str, Any]:
        """A record as JSON values (deleted ones too, with IsDeleted true)."""
        with self.lock:
            type_name = self._type(object_name)
            found = self.org.find(record_id)
            if found is None or found[0] != type_name:
                raise KeyError(record_id)
            return {k: to_json(v) for k, v in found[1].items()}

    def records(self, object_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [{k: to_json(v) for k, v in r.items()} for r in self.org.live(self._type(object_name))]

    def _type(self, name: str) -> str:
        sobject = self.org.sobject(name)
        if sobject is None:
            raise ValueError(f"unknown sObject {name}")
        return sobject.name

    # ------------------------------------------------------------------ limits, sessions, faults

    def set_daily_api_requests(self, limit: int) -> None:
        with self.lock:
            self.limits.daily = limit

    def spend_api_requests(self, count: int) -> None:
        """Other integrations of the org use `count` requests of today's allocation now."""
        with self.lock:
            self.limits.spend(count, self.now())

    def api_usage(self) -> tuple[int, int]:
        with self.lock:
            return self.limits.used(self.now()), self.limits.daily

    def expire_sessions(self) -> int:
        """Every access token dies (session timeout); refresh tokens keep working."""
        with self.lock:
            return self.oauth.expire_sessions()

    def revoke(self, client_id: str | None = None) -> int:
        """An admin revokes the app's access (Connected Apps OAuth Usage > Revoke)."""
        with self.lock:
            return self.oauth.revoke_all(client_id)

    def fail_next(self, count: int = 1, status: int = 503, match: str | None = None) -> None:
        with self.lock:
            self.faults.fail_next(count, status, match)

    # ------------------------------------------------------------------ outbound messages

    def watch(
        self,
        object_name: str,
        fields: Iterable[str],
        endpoint_url: str,
        send_session: bool = False,
        on: Iterable[str] = ("created", "updated"),
    ) -> OutboundAction:
        """A workflow rule with an outbound message: every change of `object_name` is POSTed."""
        with self.lock:
            return self.outbound.watch(object_name, list(fields), endpoint_url, send_session, on=tuple(on))

    def duplicate_next_message(self, count: int = 1) -> None:
        with self.lock:
            self.outbound.duplicate_next(count)

    def flush(self, timeout: float = 10.0) -> list[Delivery]:
        """Send every outbound message due now and wait for the answers; returns all deliveries."""
        self.tick()
        return self.outbound.outbox.flush(timeout)

    def deliveries(self) -> list[Delivery]:
        return list(self.outbound.outbox.deliveries)

    def forge_outbound(self, forgery: str, action_id: str | None = None, url: str | None = None) -> Outgoing:
        with self.lock:
            return self.outbound.forge(forgery, action_id, url)


__all__ = ["API_VERSION", "SalesforceDouble", "SaveError"]
