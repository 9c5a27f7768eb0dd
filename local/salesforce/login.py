"""The login host's HTTP side: authorize, token, revoke, userinfo, and the device verification page.

Rules live in oauth.py; this module only parses requests and writes Salesforce's answers.
`/setup/connect` is the verification URI the device flow hands out [R]: GET shows a form, POST
with `user_code` approves the code as the org's signed-in user (as the user would in a browser).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from local.double_server import Call, Response, Route, route
from local.salesforce.errors import OAuthError, invalid_session

if TYPE_CHECKING:
    from local.salesforce.double import SalesforceDouble

NO_STORE = {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private", "Pragma": "no-cache"}


class LoginApi:
    def __init__(self, double: SalesforceDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        return [
            route("GET", "/services/oauth2/authorize", self.authorize),
            route("POST", "/services/oauth2/authorize", self.authorize),
            route("POST", "/services/oauth2/token", self.token),
            route("POST", "/services/oauth2/revoke", self.revoke),
            route("GET", "/services/oauth2/revoke", self.revoke),
            route("GET", "/services/oauth2/userinfo", self.userinfo),
            route("GET", "/id/{org}/{user}", self.userinfo),
            route("GET", "/setup/connect", self.connect_page),
            route("POST", "/setup/connect", self.connect),
        ]

    def authorize(self, call: Call) -> Response:
        with self.double.lock:
            location = self.double.oauth.authorize(call.form())
        return Response(302, b"", {"Location": location, **NO_STORE})

    def token(self, call: Call) -> Response:
        content_type = call.headers.get("content-type", "")
        if call.body and "x-www-form-urlencoded" not in content_type and "multipart" not in content_type:
            raise OAuthError(
                "invalid_request", "unsupported content type; use application/x-www-form-urlencoded"
            )
        basic = _basic(call)
        with self.double.lock:
            body = self.double.oauth.token(call.form(), basic, self.double.base_url)
        return Response.json(200, body, NO_STORE)

    def revoke(self, call: Call) -> Response:
        token = call.form().get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        with self.double.lock:
            self.double.oauth.revoke(token)
        return Response.empty(200)

    def userinfo(self, call: Call) -> Response:
        with self.double.lock:
            session = self.double.oauth.session(call.bearer())
            if session is None:
                raise invalid_session()
            oauth = self.double.oauth
            username = oauth.users.get(session.user_id, "")
            return Response.json(
                200,
                {
                    "sub": oauth.identity_url(self.double.base_url, session.user_id),
                    "user_id": session.user_id,
                    "organization_id": oauth.org_id,
                    "preferred_username": username,
                    "email": username,
                    "active": True,
                    "urls": {
                        "rest": f"{self.double.base_url}/services/data/v{{version}}/",
                        "sobjects": f"{self.double.base_url}/services/data/v{{version}}/sobjects/",
                        "query": f"{self.double.base_url}/services/data/v{{version}}/query/",
                    },
                },
            )

    def connect_page(self, call: Call) -> Response:
        code = html.escape(call.one("user_code") or "")
        page = (
            "<!DOCTYPE html><html><body><form method='post' action='/setup/connect'>"
            f"<label>Enter the code shown on your device <input name='user_code' value='{code}'></label>"
            "<button type='submit'>Connect</button></form></body></html>"
        )
        return Response.text(200, page, "text/html")

    def connect(self, call: Call) -> Response:
        code = call.form().get("user_code", "")
        deny = call.form().get("deny") == "true"
        try:
            self.double.approve_device(code, deny=deny)
        except KeyError:
            return Response.text(400, "<p>Invalid or expired code.</p>", "text/html")
        return Response.text(
            200, "<p>Your device is connected.</p>" if not deny else "<p>Denied.</p>", "text/html"
        )


def _basic(call: Call) -> tuple[str, str] | None:
    import base64
    import binascii
    from urllib.parse import unquote

    value = call.headers.get("authorization", "")
    if not value.lower().startswith("basic "):
        return None
    try:
        user, _, secret = base64.b64decode(value[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(user), unquote(secret)
