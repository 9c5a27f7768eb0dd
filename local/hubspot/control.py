"""The double's own control surface under /__double__/ (for the local runner and `make mailbox`).

JSON in, JSON out; the same operations as HubSpotDouble's Python methods. Loopback only and
unauthenticated: a development tool, never deployed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from local.double_server import Call, ControlError, Response, Route, control_body, route

if TYPE_CHECKING:
    from local.hubspot.double import HubSpotDouble

PREFIX = "/__double__"


class ControlApi:
    def __init__(self, double: HubSpotDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        return [
            route("GET", PREFIX, self.state),
            route("POST", PREFIX + "/apps", self.app),
            route("POST", PREFIX + "/properties/{objectType}", self.property),
            route("POST", PREFIX + "/objects/{objectType}", self.create),
            route("PATCH", PREFIX + "/objects/{objectType}/{id}", self.update),
            route("DELETE", PREFIX + "/objects/{objectType}/{id}", self.delete),
            route("POST", PREFIX + "/webhooks/target", self.target),
            route("POST", PREFIX + "/webhooks/subscriptions", self.subscribe),
            route("GET", PREFIX + "/webhooks/deliveries", self.deliveries),
            route("POST", PREFIX + "/webhooks/flush", self.flush),
            route("POST", PREFIX + "/uninstall", self.uninstall),
            route("POST", PREFIX + "/clock/advance", self.advance),
        ]

    def state(self, _call: Call) -> Response:
        with self.double.lock:
            apps = sorted(self.double.oauth.apps)
            target = self.double.webhooks.target_url
        return Response.json(
            200,
            {
                "urls": self.double.urls(),
                "portal_id": self.double.portal_id,
                "apps": apps,
                "webhook_target": target,
            },
        )

    def app(self, call: Call) -> Response:
        body = control_body(call)
        app = self.double.register_app(
            [str(u) for u in body.get("redirect_uris") or []],
            body.get("client_id"),
            body.get("client_secret"),
            body.get("scopes"),
        )
        return Response.json(201, asdict(app))

    def property(self, call: Call) -> Response:
        body = control_body(call)
        prop = self.double.add_property(
            call.params["objectType"],
            str(body.get("name") or ""),
            body.get("label"),
            str(body.get("type") or "string"),
            str(body.get("fieldType") or "text"),
            [str(o) for o in body.get("options") or []],
            bool(body.get("hasUniqueValue", False)),
        )
        return Response.json(201, prop.json())

    def create(self, call: Call) -> Response:
        properties = control_body(call).get("properties") or {}
        object_id = self.double.create(call.params["objectType"], **properties)
        return Response.json(201, {"id": object_id})

    def update(self, call: Call) -> Response:
        self.double.update(
            call.params["objectType"], call.params["id"], **(control_body(call).get("properties") or {})
        )
        return Response.empty()

    def delete(self, call: Call) -> Response:
        self.double.delete(call.params["objectType"], call.params["id"])
        return Response.empty()

    def target(self, call: Call) -> Response:
        self.double.set_webhook_target(control_body(call).get("url"))
        return Response.empty()

    def subscribe(self, call: Call) -> Response:
        body = control_body(call)
        try:
            subscription = self.double.subscribe(str(body.get("eventType") or ""), body.get("propertyName"))
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return Response.json(201, asdict(subscription))

    def deliveries(self, _call: Call) -> Response:
        return Response.json(
            200,
            [
                {
                    "url": d.url,
                    "attempt": d.attempt,
                    "status": d.status,
                    "error": d.error,
                    "accepted": d.accepted,
                }
                for d in self.double.deliveries()
            ],
        )

    def flush(self, _call: Call) -> Response:
        return Response.json(200, {"deliveries": len(self.double.flush())})

    def uninstall(self, call: Call) -> Response:
        return Response.json(200, {"revoked": self.double.uninstall(control_body(call).get("client_id"))})

    def advance(self, call: Call) -> Response:
        self.double.advance(float(control_body(call).get("seconds", 0)))
        return Response.json(200, {"now": self.double.now().isoformat()})
