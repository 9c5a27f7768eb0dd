"""The double's own control surface under /__double__/ (for the local runner and `make mailbox`).

JSON in, JSON out; the same operations as SalesforceDouble's Python methods. Loopback only and
unauthenticated: a development tool, never deployed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from local.double_server import Call, ControlError, Response, Route, control_body, route
from local.salesforce.errors import SaveError

if TYPE_CHECKING:
    from local.salesforce.double import SalesforceDouble

PREFIX = "/__double__"


class ControlApi:
    def __init__(self, double: SalesforceDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        return [
            route("GET", PREFIX, self.state),
            route("POST", PREFIX + "/apps", self.app),
            route("POST", PREFIX + "/device/approve", self.approve),
            route("POST", PREFIX + "/consent", self.consent),
            route("POST", PREFIX + "/fields", self.field),
            route("POST", PREFIX + "/records/{sobject}", self.create),
            route("PATCH", PREFIX + "/records/{sobject}/{id}", self.update),
            route("DELETE", PREFIX + "/records/{sobject}/{id}", self.delete),
            route("GET", PREFIX + "/records/{sobject}/{id}", self.read),
            route("POST", PREFIX + "/limits", self.limits),
            route("POST", PREFIX + "/sessions/expire", self.expire),
            route("POST", PREFIX + "/revoke", self.revoke),
            route("POST", PREFIX + "/faults", self.fault),
            route("POST", PREFIX + "/outbound", self.watch),
            route("GET", PREFIX + "/outbound/deliveries", self.deliveries),
            route("POST", PREFIX + "/outbound/flush", self.flush),
            route("POST", PREFIX + "/clock/advance", self.advance),
        ]

    def state(self, _call: Call) -> Response:
        used, daily = self.double.api_usage()
        with self.double.lock:
            apps = sorted(a for a in self.double.oauth.apps if a != "__platform__")
        return Response.json(
            200,
            {
                "urls": self.double.urls(),
                "org_id": self.double.org_id,
                "user_id": self.double.user_id,
                "apps": apps,
                "api_usage": {"used": used, "daily": daily},
                "now": self.double.now().isoformat(),
            },
        )

    def app(self, call: Call) -> Response:
        body = control_body(call)
        app = self.double.register_app(
            [str(u) for u in body.get("callback_urls") or []],
            body.get("client_id"),
            body.get("client_secret"),
            body.get("scopes"),
            bool(body.get("require_secret", True)),
            bool(body.get("device_flow", True)),
        )
        return Response.json(201, asdict(app))

    def approve(self, call: Call) -> Response:
        body = control_body(call)
        try:
            device = self.double.approve_device(
                str(body.get("user_code") or ""), bool(body.get("deny", False))
            )
        except KeyError:
            raise ControlError(404, "no pending device authorization has that user code") from None
        return Response.json(200, {"user_code": device.user_code, "denied": device.denied})

    def consent(self, call: Call) -> Response:
        self.double.deny_consent(bool(control_body(call).get("deny", True)))
        return Response.empty()

    def field(self, call: Call) -> Response:
        body = control_body(call)
        try:
            described = self.double.add_custom_field(
                str(body.get("object") or ""),
                str(body.get("name") or ""),
                str(body.get("type") or "text"),
                body.get("length"),
                body.get("label"),
                bool(body.get("external_id", False)),
                bool(body.get("unique", False)),
                [str(v) for v in body.get("picklist") or []],
            )
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return Response.json(201, described)

    def create(self, call: Call) -> Response:
        try:
            record_id = self.double.create(call.params["sobject"], **control_body(call))
        except SaveError as error:
            return Response.json(400, [error.save_result()])
        except ValueError as exc:
            raise ControlError(404, str(exc)) from None
        return Response.json(201, {"id": record_id})

    def update(self, call: Call) -> Response:
        try:
            self.double.update(call.params["sobject"], call.params["id"], **control_body(call))
        except SaveError as error:
            return Response.json(400, [error.save_result()])
        except ValueError as exc:
            raise ControlError(404, str(exc)) from None
        return Response.empty()

    def delete(self, call: Call) -> Response:
        try:
            self.double.delete(call.params["sobject"], call.params["id"])
        except SaveError as error:
            return Response.json(400, [error.save_result()])
        return Response.empty()

    def read(self, call: Call) -> Response:
        try:
            return Response.json(200, self.double.record(call.params["sobject"], call.params["id"]))
        except (KeyError, ValueError):
            raise ControlError(404, "no such record") from None

    def limits(self, call: Call) -> Response:
        body = control_body(call)
        if "daily" in body:
            self.double.set_daily_api_requests(int(body["daily"]))
        if "spend" in body:
            self.double.spend_api_requests(int(body["spend"]))
        used, daily = self.double.api_usage()
        return Response.json(200, {"used": used, "daily": daily})

    def expire(self, _call: Call) -> Response:
        return Response.json(200, {"expired": self.double.expire_sessions()})

    def revoke(self, call: Call) -> Response:
        return Response.json(200, {"revoked": self.double.revoke(control_body(call).get("client_id"))})

    def fault(self, call: Call) -> Response:
        body = control_body(call)
        try:
            self.double.fail_next(int(body.get("count", 1)), int(body.get("status", 503)), body.get("match"))
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return Response.empty()

    def watch(self, call: Call) -> Response:
        body = control_body(call)
        try:
            action = self.double.watch(
                str(body.get("object") or "Contact"),
                [str(f) for f in body.get("fields") or []],
                str(body.get("endpoint_url") or ""),
                bool(body.get("send_session", False)),
            )
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return Response.json(201, {"action_id": action.id, "fields": action.fields})

    def deliveries(self, _call: Call) -> Response:
        return Response.json(
            200,
            [
                {
                    "url": d.url,
                    "attempt": d.attempt,
                    "status": d.status,
                    "error": d.error,
                    "acknowledged": d.accepted,
                }
                for d in self.double.deliveries()
            ],
        )

    def flush(self, _call: Call) -> Response:
        return Response.json(200, {"deliveries": len(self.double.flush())})

    def advance(self, call: Call) -> Response:
        self.double.advance(float(control_body(call).get("seconds", 0)))
        return Response.json(200, {"now": self.double.now().isoformat()})
