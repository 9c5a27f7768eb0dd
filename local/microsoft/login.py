"""The identity platform's HTTP endpoints (login.microsoftonline.com paths) over `Identity`.

* ``GET /{tenant}/v2.0/.well-known/openid-configuration``
* ``GET /{tenant}/discovery/v2.0/keys``
* ``GET|POST /{tenant}/oauth2/v2.0/authorize`` -> 302 to the redirect URI (or a form_post page)
* ``POST /{tenant}/oauth2/v2.0/token``
* ``GET /{tenant}/oauth2/v2.0/logout``

`{tenant}` is `common`, `organizations`, `consumers`, a tenant id or one of its domains.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from local.microsoft.errors import IdentityError
from local.microsoft.server import Call, Response, Route, route

if TYPE_CHECKING:
    from local.microsoft.double import MicrosoftDouble

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


class LoginApi:
    def __init__(self, double: MicrosoftDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        return [
            route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            route("GET", "/{tenant}/discovery/v2.0/keys", self.keys),
            route("GET", "/{tenant}/oauth2/v2.0/authorize", self.authorize),
            route("POST", "/{tenant}/oauth2/v2.0/authorize", self.authorize),
            route("POST", "/{tenant}/oauth2/v2.0/token", self.token),
            route("GET", "/{tenant}/oauth2/v2.0/logout", self.logout),
        ]

    def openid_configuration(self, call: Call) -> Response:
        with self.double.lock:
            body = self.double.identity.openid_configuration(call.origin, call.params["tenant"])
        return Response.json(
            200, body, {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"}
        )

    def keys(self, call: Call) -> Response:
        with self.double.lock:
            tenant = self.double.identity.tenant_id(call.params["tenant"])
            if tenant is None:
                raise IdentityError(
                    400, "invalid_tenant", 90002, f"Tenant '{call.params['tenant']}' not found."
                )
            issuer = f"{call.origin}/{'{tenantid}' if tenant in ('common', 'organizations') else tenant}/v2.0"
            body = self.double.keys.jwks(issuer)
        return Response.json(200, body, {"Cache-Control": "max-age=86400, private"})

    def authorize(self, call: Call) -> Response:
        params = {k: v[-1] for k, v in call.query.items()}
        if call.method == "POST":
            params |= {k: v[-1] for k, v in parse_qs(call.body.decode("utf-8", "replace")).items()}
        with self.double.lock:
            answer = self.double.identity.authorize(params, call.params["tenant"], self.double.now())
        if answer.form_post is not None:
            return Response(200, answer.form_post, {"Content-Type": "text/html; charset=utf-8", **NO_STORE})
        assert answer.location is not None
        return Response(302, b"", {"Location": answer.location, **NO_STORE})

    def token(self, call: Call) -> Response:
        content_type = call.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in content_type.lower():
            raise IdentityError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        form = call.form()
        with self.double.lock:
            if self.double.identity.tenant_id(call.params["tenant"]) is None:
                raise IdentityError(
                    400, "invalid_tenant", 90002, f"Tenant '{call.params['tenant']}' not found."
                )
            body = self.double.identity.token(form, _basic(call), call.origin, self.double.now())
        return Response.json(200, body, NO_STORE)

    def logout(self, _call: Call) -> Response:
        return Response(
            200, b"<html><body>You signed out of your account.</body></html>", {"Content-Type": "text/html"}
        )


def _basic(call: Call) -> tuple[str, str] | None:
    value = call.headers.get("authorization", "")
    if not value.lower().startswith("basic "):
        return None
    try:
        user, _, secret = base64.b64decode(value[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(user), unquote(secret)
