"""HubSpotDouble: the whole double as one object (HTTP server + one portal + control methods).

    with HubSpotDouble(clock=ManualClock(), seed=1) as hubspot:
        app = hubspot.register_app(["http://127.0.0.1:3000/oauth/hubspot/callback"])
        hubspot.set_webhook_target("http://127.0.0.1:3000/webhooks/hubspot")
        hubspot.subscribe("contact.propertyChange", "email")
        httpx.get(hubspot.api_url + "/crm/v3/objects/contacts", headers={"Authorization": ...})

app.hubspot.com (install page), api.hubapi.com and api.hubspot.com collapse onto one port: the
product's settings point at `authorize_url`, `token_url` and `api_url`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

from local.clock import Clock, RealClock
from local.double_server import Call, Delivery, HttpServer, Outgoing, Response, Router
from local.hubspot.api import HubSpotApi
from local.hubspot.control import ControlApi
from local.hubspot.crm import Crm, CrmObject, Property, object_type
from local.hubspot.errors import ApiError
from local.hubspot.limits import PRIVATE_APP_DAILY, PRIVATE_APP_PER_10S, PUBLIC_APP_PER_10S, RateLimits
from local.hubspot.oauth import App, OAuth
from local.hubspot.webhooks import Subscription, Webhooks

USER_SOURCE = "CRM_UI"


class HubSpotDouble:
    """A faithful local HubSpot portal: OAuth, CRM v3 objects and batch, search, properties,
    associations v4, lists v3, rate limits and signed webhooks."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seed: int = 0,
        app_type: str = "public",
        requests_per_10s: int | None = None,
        daily_limit: int | None = None,
        search_per_second: int = 5,
        access_token_seconds: int = 1800,
        portal_id: int | None = None,
    ) -> None:
        if app_type not in ("public", "private"):
            raise ValueError("app_type is public (OAuth) or private")
        self.clock: Clock = clock or RealClock()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._sequence = self.rng.randint(100_000, 999_999)
        self.portal_id = portal_id or self.rng.randint(10_000_000, 99_999_999)
        self.oauth = OAuth(
            self.now, self.portal_id, f"dev-{self.portal_id}.hubspot.example", "admin@mailbridge-dev.example",
            self.rng.randint(1_000_000, 9_999_999), self.rng, access_seconds=access_token_seconds,
        )  # fmt: skip
        private = app_type == "private"
        self.limits = RateLimits(
            per_interval=requests_per_10s or (PRIVATE_APP_PER_10S if private else PUBLIC_APP_PER_10S),
            daily=daily_limit if daily_limit is not None else (PRIVATE_APP_DAILY if private else None),
            search_per_second=search_per_second,
        )
        self.crm = Crm(self.now, self.next_id)
        self.shuffle_batch_results = False
        """True: batch answers list their results in a shuffled order (HubSpot promises none)."""
        self.webhooks = Webhooks(
            self.now, self._app_id, self._secret, self.portal_id, self.lock, self.next_id
        )
        self.crm.listeners.append(self._on_change)
        router = Router(
            HubSpotApi(self).routes() + ControlApi(self).routes(), self._not_found, self._not_allowed
        )
        self._server = HttpServer(router, host, port, name="hubspot-double")

    def next_id(self) -> int:
        with self.lock:
            self._sequence += self.rng.randint(1, 7)
            return self._sequence

    def _app(self) -> App | None:
        return next(iter(self.oauth.apps.values()), None)

    def _app_id(self) -> int:
        app = self._app()
        return app.app_id if app else 0

    def _secret(self) -> str:
        app = self._app()
        return app.client_secret if app else ""

    @staticmethod
    def _not_found(call: Call) -> Response:
        return ApiError(404, f"Unable to route {call.method} {call.path}", "OBJECT_NOT_FOUND").response()

    @staticmethod
    def _not_allowed(call: Call) -> Response:
        return ApiError(
            405, f"HTTP method {call.method} is not supported by this endpoint", "VALIDATION_ERROR"
        ).response()

    # ------------------------------------------------------------------ lifecycle and URLs

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def start(self) -> HubSpotDouble:
        self._server.start()
        self.webhooks.outbox.start()
        return self

    def stop(self) -> None:
        self.webhooks.outbox.stop()
        self._server.stop()

    def __enter__(self) -> HubSpotDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    api_url = base_url

    @property
    def authorize_url(self) -> str:
        return self.base_url + "/oauth/authorize"

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/v1/token"

    def urls(self) -> dict[str, str]:
        return {
            "authorize": self.authorize_url,
            "token": self.token_url,
            "api": self.base_url,
            "contacts": self.base_url + "/crm/v3/objects/contacts",
            "control": self.base_url + "/__double__",
        }

    # ------------------------------------------------------------------ setup

    def register_app(
        self,
        redirect_uris: Iterable[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: list[str] | None = None,
    ) -> App:
        """The developer's public app (one per double: its secret signs the webhooks)."""
        with self.lock:
            return self.oauth.register_app(list(redirect_uris), client_id, client_secret, scopes)

    def decline_install(self, decline: bool = True) -> None:
        with self.lock:
            self.oauth.declines = decline

    def add_property(
        self, object_name: str, name: str, label: str | None = None, type_: str = "string",
        field_type: str = "text", options: Iterable[str] = (), unique: bool = False,
    ) -> Property:  # fmt: skip
        """A custom property, as Settings > Properties > Create property makes it."""
        with self.lock:
            return self.crm.add_property(
                object_name, name, label or name.replace("_", " ").title(), type_, field_type, list(options),
                unique=unique,
            )  # fmt: skip

    # ------------------------------------------------------------------ a user works in HubSpot

    def create(self, object_name: str, **properties: Any) -> str:
        """An object created in the CRM UI (fires webhooks with changeSource CRM_UI); returns its id."""
        with self.lock:
            kind = object_type(object_name)
            values, _links = self.crm.validate_create(kind, {"properties": properties})
            return str(self.crm.create(kind, values, [], USER_SOURCE).id)

    def update(self, object_name: str, object_id: str, **properties: Any) -> None:
        with self.lock:
            kind = object_type(object_name)
            self.crm.update(kind, self.crm.get(kind, object_id), {"properties": properties}, USER_SOURCE)

    def delete(self, object_name: str, object_id: str) -> None:
        with self.lock:
            kind = object_type(object_name)
            self.crm.archive(kind, self.crm.get(kind, object_id), USER_SOURCE)

    def object(self, object_name: str, object_id: str, archived: bool = False) -> CrmObject:
        with self.lock:
            return self.crm.get(object_type(object_name), object_id, archived=archived)

    def associated(self, object_name: str, object_id: str, to_object: str) -> list[str]:
        with self.lock:
            kind, other = object_type(object_name), object_type(to_object)
            return [str(i) for i, _ in self.crm.associated(kind.name, int(object_id), other.name)]

    def list_members(self, list_id: str) -> list[str]:
        with self.lock:
            return [str(i) for i in sorted(self.crm.lists[int(list_id)].members)]

    # ------------------------------------------------------------------ tokens and limits

    def uninstall(self, client_id: str | None = None) -> int:
        """The portal uninstalls the app: its refresh and access tokens die at once."""
        with self.lock:
            return self.oauth.uninstall(client_id)

    def expire_access_tokens(self) -> int:
        with self.lock:
            return self.oauth.expire_access_tokens()

    # ------------------------------------------------------------------ webhooks

    def set_webhook_target(self, url: str | None) -> None:
        with self.lock:
            self.webhooks.target_url = url

    def subscribe(self, event_type: str, property_name: str | None = None) -> Subscription:
        with self.lock:
            return self.webhooks.subscribe(event_type, property_name)

    def duplicate_next_webhook(self, count: int = 1) -> None:
        with self.lock:
            self.webhooks.duplicate_next(count)

    def flush(self, timeout: float = 10.0) -> list[Delivery]:
        return self.webhooks.outbox.flush(timeout)

    def deliveries(self) -> list[Delivery]:
        return list(self.webhooks.outbox.deliveries)

    def forge_webhook(
        self, forgery: str, url: str | None = None, events: list[dict[str, Any]] | None = None
    ) -> Outgoing:
        with self.lock:
            return self.webhooks.forge(forgery, url, events)

    def _on_change(
        self, kind: str, object_id: int, change: str, values: dict[str, str | None], source: str
    ) -> None:
        self.webhooks.change(kind, object_id, change, values, source)
