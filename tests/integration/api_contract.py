"""The HTTP API in-process for schemathesis: the local runner's API Gateway emulation
(`local.http.ApiGateway`: route match, JWT authorizer with the local issuer, payload 2.0 event,
500 when the function raises) over the api function's real handler on the moto stack, served as a
WSGI application so schemathesis's WSGI transport drives it without sockets or a runner process.

`seed` stores the state that lets generated requests get past 404 on the main resources: an
account, an email in it, a contact; `ids` maps each path parameter name to the seeded id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from local.auth import AUDIENCE, Issuer
from local.functions import Invocation
from local.http import ApiGateway
from local.template import Authorizer
from mailbridge import accounts, crypto
from mailbridge.config import get_settings
from mailbridge.models.account import Account, PublicServerSettings, SyncState
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.providers.imap.settings import Security
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.sync.ingest import Mailbox, ingest
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function

TENANT = "fuzz"
ROLE = "owner"
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def http_functions(stack: Stack) -> dict[str, str]:
    """The functions that serve the HTTP API's routes, by logical id, with their code folder."""
    served = {route.function for route in stack.template.routes()}
    return {
        f.logical_id: f.code_dir.name for f in stack.template.functions().values() if f.logical_id in served
    }


def function_environment(stack: Stack) -> dict[str, str]:
    """The environment the HTTP functions run with, merged (one process hosts all of them here);
    a variable two of them set differently would make this harness wrong, so it refuses (but for
    the service name Powertools puts in log lines and metrics: the api function's is kept)."""
    merged: dict[str, str] = stack.env("ApiFunction")
    for logical_id in http_functions(stack):
        for name, value in stack.env(logical_id).items():
            if name != "POWERTOOLS_SERVICE_NAME":
                assert merged.setdefault(name, value) == value, f"{name} differs between the HTTP functions"
    return merged


def api_gateway(stack: Stack, issuer: Issuer) -> ApiGateway:
    """The template's routes behind its JWT authorizers (pointed at `issuer`), invoking the
    function each route names in this process (one cold start each, with `function_environment`
    already set); a raised exception is an integration failure (500), as in AWS."""
    folders = http_functions(stack)
    modules = {logical_id: load_function(folder) for logical_id, folder in folders.items()}
    context = FakeLambdaContext()

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        try:
            return Invocation(result=modules[function].lambda_handler(event, context))
        except Exception as exc:  # noqa: BLE001 - what Lambda reports as a function error
            return Invocation(error_type=type(exc).__name__, error_message=str(exc))

    authorizers = {
        name: Authorizer(name, issuer.issuer, (AUDIENCE,), a.identity_source)
        for name, a in stack.template.authorizers().items()
    }
    return ApiGateway(stack.template.routes(), authorizers, issuer, invoke)


def wsgi_app(gateway: ApiGateway) -> Wsgi:
    """`gateway` as a WSGI application: the request target as sent (percent-encoded), every header,
    the body; the answer's status, headers and body unchanged."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("REQUEST_URI") or environ.get("RAW_URI")
        if not target:
            path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
            query = environ.get("QUERY_STRING", "")
            target = path + (f"?{query}" if query else "")
        headers = [
            (key[5:].replace("_", "-").lower(), str(value))
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("content-type", environ["CONTENT_TYPE"]))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        response = gateway.handle(environ["REQUEST_METHOD"], target, headers, body, "203.0.113.24")
        reason = {200: "OK"}.get(response.status, "")
        start_response(f"{response.status} {reason}".strip(), response.headers)
        return [response.body]

    return app


@dataclass
class Seeded:
    account_id: str
    email_id: str
    contact_id: str
    extra: dict[str, str] = field(default_factory=dict)

    def ids(self) -> dict[str, str]:
        """The seeded id for each path parameter name the document uses for these resources."""
        return {
            "account_id": self.account_id,
            "email_id": self.email_id,
            "contact_id": self.contact_id,
            **self.extra,
        }


RAW = (
    b"Message-ID: <fuzz-1@example.com>\r\n"
    b"From: Ada <ada@example.com>\r\n"
    b"To: Bob <bob@fuzz.test>\r\n"
    b"Subject: Kickoff\r\n"
    b"Date: Thu, 01 Jan 2026 09:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Kickoff on Monday.\r\n"
)


def seed(stack: Stack, call: Callable[[str, str, Any], tuple[int, Any]]) -> Seeded:
    """An IMAP account (as an earlier create left it), one email ingested through the real path,
    a contact created through the API, and every feature switched on so that no route is 404 for
    a feature that is off. `call(method, path, body)` goes through the API as the tests' owner."""
    status, _ = call("PUT", "/features", {"campaigns": True, "automations": True, "ai": True})
    assert status == 200, status
    settings = get_settings()
    account_id = "acc_f0220000000000000001"
    server: dict[str, Any] = {"port": 993, "security": Security.SSL, "username": "bob@fuzz.test"}
    account = Account(
        account_id=account_id,
        tenant_id=TENANT,
        provider="imap",
        address="bob@fuzz.test",
        imap=PublicServerSettings(host="imap.example.com", **server),
        smtp=PublicServerSettings(host="smtp.example.com", **server),
        created_at=datetime.now(UTC),
        created_by="local-user",
        sync=SyncState(),
    )
    secrets = {"imap_password": "app-password", "smtp_password": "app-password"}
    envelope = crypto.encrypt(
        json.dumps(secrets).encode(),
        accounts.credentials_context(TENANT, account_id),
        key_id=settings.data_key_id,
    )
    AccountStore(settings.tables.accounts).create_account(account, envelope)
    mailbox = Mailbox(TENANT, account_id, "bob@fuzz.test", "INBOX", uidvalidity=7)
    fetched = FetchedMessage(
        uid=1, flags=(), internal_date=datetime(2026, 1, 1, tzinfo=UTC), modseq=None, size=len(RAW), raw=RAW
    )
    emails = EmailStore(stack.deployed.tables["EmailsTable"])
    result = ingest(mailbox, fetched, emails, BlobStore(stack.deployed.buckets["MailBucket"]))
    assert result.email_id is not None, result
    contact = {"name": "Ada Lovelace", "emails": [{"address": "ada@example.com", "primary": True}]}
    status, created = call("POST", "/crm/contacts", contact)
    assert status == 201, (status, created)
    return Seeded(account_id=account_id, email_id=result.email_id, contact_id=created["contact_id"])
