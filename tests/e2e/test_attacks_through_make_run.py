"""Issue 8 as its reporter checked it: an attacker's requests through `make run`, over real HTTP.

`make run` (`python -m local`) runs in a process of its own with its output captured
(tests/e2e/make_run.py); a real Dovecot holds the mailbox and an SMTP sink receives what is sent.
Every reproduction of issue 8's points 1-8 and 13 is sent, most of them generated from the running
API's own `/openapi.json` (every request body, every string and number in it, every paged
listing), so a route or field added later is probed too. Each answer must be below 500 and carry
our `error.code` (API Gateway's own answers: its documented `{"message"}`); the last test reads
everything the runner printed and finds none of the values that were sent: each carries the
marker CANARY.

A value is refused when the answer is 422 `validation_error` naming the field (`details[].loc`):
another 4xx (a conflict, a failed login) could hide a field that let the value through. Which
values a field must refuse depends on its kind (mailbridge.models.fields): every text refuses NUL,
U+2028 and line breaks, except bodies and notes (`MultiLine`: line breaks are text there) and
passwords (any character but NUL, CR and LF); a value written into a mail header (`HeaderText`)
also refuses encoded words that decode to any of these. Elsewhere an encoded word is plain text.
"""

from __future__ import annotations

import base64
import email
import json
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from functools import partial
from typing import Any

import pytest
import requests

from local.functions import ROOT
from local.template import load_template
from tests.e2e.make_run import Answer, MakeRun, start_make_run
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER, SmtpSink
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot

CANARY = "Zq8probe"  # in every value this module sends; never in the runner's output
EVIL = "x@evil.example"
TENANT = "probe"
CLIENTS = 4  # concurrent probe requests (the api function runs in up to 4 sandboxes)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Issue 8, point 1: an encoded word that decodes to "Hi<CR><LF>Bcc: x@evil.example".
ENCODED_INJECTION = f"=?utf-8?b?{b64('Hi' + chr(13) + chr(10) + 'Bcc: ' + EVIL)}?="
assert ENCODED_INJECTION == "=?utf-8?b?SGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?="

# What every text field is sent (the issue's list), then what header fields are sent besides.
TEXT_PROBES = {
    "cr_lf": f"{CANARY} a\r\nBcc: {EVIL}",
    "nul": f"{CANARY} a\x00b",
    "u2028": f"{CANARY} a\u2028Bcc: {EVIL}",
    "encoded_cr_lf": f"{CANARY} {ENCODED_INJECTION}",
}
HEADER_PROBES = {
    "lf": f"{CANARY} a\nBcc: {EVIL}",
    "q_encoded_cr_lf": f"{CANARY} =?utf-8?q?Hi=0D=0ABcc:_{EVIL}?=",
    "encoded_nul": f"{CANARY} =?utf-8?b?{b64('a' + chr(0) + 'b')}?=",
    "encoded_u2028": f"{CANARY} =?utf-8?b?{b64('a' + chr(0x2028) + 'b')}?=",
    "encoded_twice": f"{CANARY} =?utf-8?b?{b64(ENCODED_INJECTION)}?=",
}
# Which probes a field of each kind must refuse (the others: any answer below 500).
REFUSES = {
    "header": set(TEXT_PROBES) | set(HEADER_PROBES),
    "single_line": {"cr_lf", "nul", "u2028"},
    "multi_line": {"nul", "u2028"},
    "password": {"cr_lf", "nul"},
}

Path_ = tuple[str, ...]  # a field in a request body: keys, "[]" for an array item, "*" for a map value

HEADER_FIELDS: set[tuple[str, Path_]] = {
    ("POST /accounts", ("display_name",)),
    ("PATCH /accounts/{account_id}", ("display_name",)),
    ("POST /emails/send", ("subject",)),
    ("POST /emails/send", ("to", "[]", "name")),
    ("POST /emails/send", ("cc", "[]", "name")),
    ("POST /emails/send", ("bcc", "[]", "name")),
    ("POST /emails/send", ("attachments", "[]", "filename")),
    ("POST /uploads", ("filename",)),
    # Drafts are sent as POST /emails/send sends; a template's subject becomes the Subject header
    *(
        (route, path)
        for route in ("POST /drafts", "PUT /drafts/{draft_id}")
        for path in (
            ("subject",),
            ("to", "[]", "name"),
            ("cc", "[]", "name"),
            ("bcc", "[]", "name"),
            ("attachments", "[]", "filename"),
        )
    ),
    *(
        (route, path)
        for route in ("POST /templates", "PUT /templates/{template_id}")
        for path in (("subject",), ("variants", "[]", "subject"))
    ),
    # A send_email action is POST /emails/send's plain-text message
    ("POST /ai/assist/apply", ("action", "payload", "subject")),
    ("POST /ai/assist/apply", ("action", "payload", "to", "[]", "name")),
}
MULTI_LINE_FIELDS: set[tuple[str, Path_]] = {
    ("POST /emails/send", ("text",)),
    ("POST /emails/send", ("html",)),
    ("POST /crm/contacts", ("custom", "*")),
    ("PATCH /crm/contacts/{contact_id}", ("custom", "*")),
    ("PUT /emails/{email_id}/follow-up", ("note",)),
    # The routes test_attacks_through_make_run_new_routes.py probes
    ("POST /crm/tasks", ("description",)),
    ("PATCH /crm/tasks/{task_id}", ("description",)),
    ("POST /crm/activities", ("body",)),
    ("POST /calendar/events", ("description",)),
    ("PUT /calendar/events/{event_id}", ("description",)),
    ("POST /calendar/events", ("overrides", "[]", "description")),
    ("PUT /calendar/events/{event_id}", ("overrides", "[]", "description")),
    ("POST /calendar/events/{event_id}/invite", ("message",)),
    ("POST /automations", ("description",)),
    ("PUT /automations/{rule_id}", ("description",)),
    # Template sources (Jinja) and draft bodies
    *(
        (route, path)
        for route in ("POST /templates", "PUT /templates/{template_id}")
        for path in (("html",), ("text",), ("variants", "[]", "html"), ("variants", "[]", "text"))
    ),
    *((route, (part,)) for route in ("POST /drafts", "PUT /drafts/{draft_id}") for part in ("text", "html")),
    # The assist panel's actions: a task's and an event's description, an email's text
    ("POST /ai/assist/apply", ("action", "payload", "description")),
    ("POST /ai/assist/apply", ("action", "payload", "overrides", "[]", "description")),
    ("POST /ai/assist/apply", ("action", "payload", "text")),
}
PASSWORD_FIELDS: set[tuple[str, Path_]] = {
    (route, (server, "password"))
    for route in ("POST /accounts", "PATCH /accounts/{account_id}")
    for server in ("imap", "smtp")
}


def field_kind(route: str, path: Path_) -> str:
    if (route, path) in HEADER_FIELDS:
        return "header"
    if (route, path) in MULTI_LINE_FIELDS:
        return "multi_line"
    if (route, path) in PASSWORD_FIELDS:
        return "password"
    return "single_line"


# ------------------------------------------------------------------------------------ the API document


# Routes added after issue 8 (CRM tasks and activities, calendar, automations, OAuth and push
# webhooks) are probed by test_attacks_through_make_run_new_routes.py, on a `make run` of its own
# whose world holds what they need (tasks, activities, events, invitations, rules, runs): the two
# modules run on two pytest-xdist workers. Every route of the document is in exactly one of them,
# except NOT_YET_PROBED.
NEW_ROUTES = (
    "/crm/tasks",
    "/crm/activities",
    "/crm/contacts/{contact_id}/activities",
    "/crm/deals/{deal_id}/activities",
    "/calendar",
    "/automations",
    "/oauth",
    "/webhooks",
)

# Routes probed by neither module: none. The AI routes (issue 14), the assist panel, templates and
# drafts are probed here: this world turns the ai flag on and holds a backfill job, a category
# rule, two templates (one saved twice) and three drafts (see _fill). The CRM sync routes (issue
# 18) are probed here too, on the world's Salesforce integration, connected through the device
# flow at the double whose URLs this run wrote to its own state folder (`LOCAL_STATE_DIR`).
NOT_YET_PROBED: tuple[str, ...] = ()

PROBE_RATE_LIMITS = dict.fromkeys(
    ("reads", "writes", "ai", "event_writes", "ics", "automation_saves"), 100_000
)
"""The probed tenant's rate-limit overrides (`PUT /settings/rate-limits`): the probes send more
requests a minute than any class allows a tenant by default (AI 10, ICS 5)."""


def is_new_route(route: str) -> bool:
    path = route.split(" ", 1)[1]
    return path.startswith(NEW_ROUTES) and not path.startswith(NOT_YET_PROBED)


def is_issue8_route(route: str) -> bool:
    return not route.split(" ", 1)[1].startswith(NEW_ROUTES + NOT_YET_PROBED)


class Document:
    """The running API's /openapi.json: routes, request bodies and the fields in them."""

    def __init__(self, doc: dict[str, Any], probed: Callable[[str], bool] = is_issue8_route) -> None:
        self.doc = doc
        self.schemas: dict[str, Any] = doc["components"]["schemas"]
        self.probed = probed
        """Which routes (`METHOD /path`) this module probes."""

    def operations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for path, operations in self.doc["paths"].items():
            for method, operation in operations.items():
                yield f"{method.upper()} {path}", operation

    def body_routes(self) -> dict[str, dict[str, Any]]:
        """Route key -> the JSON schema of its request body (the routes this probe covers)."""
        return {
            route: op["requestBody"]["content"]["application/json"]["schema"]
            for route, op in self.operations()
            if "requestBody" in op and self.probed(route)
        }

    def paged_routes(self) -> list[str]:
        return [
            route
            for route, op in self.operations()
            if self.probed(route)
            and any(p["name"] == "cursor" and p["in"] == "query" for p in op.get("parameters", []))
        ]

    def fields(self, schema: dict[str, Any], wanted: Callable[[dict[str, Any]], bool]) -> set[Path_]:
        found: set[Path_] = set()
        self._walk(schema, (), wanted, found)
        return found

    def _walk(
        self, schema: dict[str, Any], path: Path_, wanted: Callable[[dict[str, Any]], bool], found: set[Path_]
    ) -> None:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        for combinator in ("anyOf", "oneOf", "allOf"):
            for member in schema.get(combinator, []):
                self._walk(member, path, wanted, found)
        if wanted(schema):
            found.add(path)
        for name, member in schema.get("properties", {}).items():
            self._walk(member, (*path, name), wanted, found)
        for member in schema.get("patternProperties", {}).values():
            self._walk(member, (*path, "*"), wanted, found)
        if isinstance(schema.get("additionalProperties"), dict):
            self._walk(schema["additionalProperties"], (*path, "*"), wanted, found)
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            self._walk(schema["items"], (*path, "[]"), wanted, found)


def is_string(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string"


def is_number(schema: dict[str, Any]) -> bool:
    return schema.get("type") in ("number", "integer")


def has_path(body: Any, path: Path_) -> bool:
    current = body
    for key in path:
        if key == "[]":
            if not isinstance(current, list) or not current:
                return False
            current = current[0]
        elif key == "*":
            if not isinstance(current, dict) or not current:
                return False
            current = next(iter(current.values()))
        else:
            if not isinstance(current, dict) or key not in current:
                return False
            current = current[key]
    return True


def with_value(body: Any, path: Path_, value: Any) -> Any:
    """A copy of `body` with the field at `path` set to `value` (its parent must exist; a missing
    last key is added, as for an optional field)."""
    copy = json.loads(json.dumps(body))
    parent = copy
    for key in path[:-1]:
        if key == "[]":
            parent = parent[0]
        elif key == "*":
            parent = next(iter(parent.values()))
        else:
            parent = parent[key]
    last = path[-1]
    if last == "[]":
        parent[0] = value
    elif last == "*":
        parent[next(iter(parent))] = value
    else:
        parent[last] = value
    return copy


def names_field(answer: Answer, path: Path_) -> bool:
    """422 `validation_error` whose details point at the field (union member names may sit between)."""
    if answer.status != 422 or answer.code != "validation_error":
        return False
    wanted = [0 if key == "[]" else key for key in path if key != "*"]
    for detail in answer.json()["error"]["details"]:
        loc = iter(detail["loc"])
        if all(any(part == key for part in loc) for key in wanted):
            return True
        # A discriminated union's tag that names no member is reported at the union itself
        # (pydantic `union_tag_invalid`, loc ending at `action`): that names the tag, and only it
        if (
            path in UNION_TAGS
            and detail["type"] == "union_tag_invalid"
            and detail["loc"][-1] == wanted[-2]
            and is_subsequence(wanted[:-1], detail["loc"])
        ):
            return True
    return False


# The tags of the discriminated unions in request bodies (`Field(discriminator=...)`)
UNION_TAGS: set[Path_] = {("action", "type")}  # POST /ai/assist/apply (mailbridge.ai.assist.Action)


# Fields the service checks after validation, with the 4xx it answers (not 422 naming the field).
SERVICE_CHECKED: dict[tuple[str, Path_], tuple[int, str]] = {
    ("POST /emails/send", ("attachments", "[]", "content_base64")): (400, "invalid_attachment"),
}


def refused(answer: Answer, route: str, path: Path_) -> bool:
    if (route, path) in SERVICE_CHECKED:
        return (answer.status, answer.code) == SERVICE_CHECKED[route, path]
    return names_field(answer, path)


def well_formed(answer: Answer) -> bool:
    """Below 500, and a 4xx carries our error code."""
    return answer.status < 400 or (answer.status < 500 and answer.code is not None)


# ------------------------------------------------------------------------------------------- mail


def inbound(
    sender: str, to: str, subject: str, msgid: str, *, hour: int, refs: str | None, extra: str
) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        f"Date: Tue, 17 Nov 2026 {hour:02d}:00:00 +0000",
        "MIME-Version: 1.0",
    ]
    if refs:
        lines += [f"In-Reply-To: <{refs}>", f"References: <{refs}>"]
    if not extra:
        lines += ["Content-Type: text/plain; charset=utf-8", "", f"Hello {CANARY}.", ""]
        return "\r\n".join(lines).encode()
    return ("\r\n".join(lines) + "\r\n" + extra).encode()


def with_attachment(filename_header: str) -> str:
    return (
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached, {CANARY}.\r\n"
        f'--b1\r\nContent-Type: text/plain; name="{filename_header}"\r\n'
        f'Content-Disposition: attachment; filename="{filename_header}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{b64('quote ' + CANARY)}\r\n--b1--\r\n"
    )


def header_shape(raw: bytes) -> list[list[str]]:
    """Per MIME part (depth first), its header field names in order, lower-cased."""
    message = email.message_from_bytes(raw, policy=policy.compat32)
    return [[name.lower() for name in part] for part in message.walk()]


def header_lines_are_fields_or_folds(raw: bytes) -> bool:
    """Every line of the top header block starts a field (`name:`) or continues one (RFC 5322 2.2.3)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return all(re.match(rb"[!-9;-~]+:|[ \t]", line) for line in head.split(b"\r\n"))


# ------------------------------------------------------------------------------------------ fixtures


@dataclass
class World:
    """What the probes need: `make run`, a connected mailbox with mail, CRM records, an upload."""

    run: MakeRun
    doc: Document
    server: DovecotServer
    sink: SmtpSink
    user: DovecotUser
    token: str
    account_id: str
    address: str
    emails: dict[str, str] = field(default_factory=dict)  # name -> email_id
    thread_id: str = ""
    quiet_thread_id: str = ""  # the "clean" message's thread: snooze probes hide it, not Renewal
    records: dict[str, str] = field(default_factory=dict)  # contact, contact2, company, ... -> id
    upload_id: str = ""
    silent: SilentServer | None = None

    # Body routes the number probe must reach (a check that the probe found their number fields).
    number_routes = frozenset({"POST /crm/contacts", "POST /crm/deals", "POST /uploads"})

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, **kw: Any) -> Answer:
        return self.run.request(method, path, token or self.token, body, **kw)

    def concrete(self, route: str) -> str:
        """The route's path with this world's ids."""
        return concrete(route, self)

    def headers(self, route: str) -> dict[str, str] | None:
        """The request headers a valid request of `route` needs, read when it is sent: `PUT
        /drafts/{draft_id}` requires `If-Match` with the draft's current version (else 428
        `precondition_required`; the body is validated first, so a refused value is a 422 either
        way, but a valid control body would be refused without it)."""
        if route != "PUT /drafts/{draft_id}":
            return None
        version = self.call("GET", f"/drafts/{self.records['draft']}").json()["version"]
        return {"If-Match": f'"{version}"'}

    def base_bodies(self) -> dict[str, list[Callable[[], dict[str, Any]]]]:
        """Per body route this world probes, valid bodies holding every field (see base_bodies)."""
        return base_bodies(self)

    def fresh_user(self, tag: str) -> DovecotUser:
        return self.server.add_user(
            f"{CANARY.lower()}-{tag}-{time.monotonic_ns() % 10**9}", f"{CANARY}-pw-{tag}"
        )

    def account_body(self, user: DovecotUser, address: str, *, smtp: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "provider": "imap",
            "address": address,
            "imap": {
                "host": self.server.host,
                "port": self.server.imap_port,
                "security": "none",
                "username": user.name,
                "password": user.password,
            },
        }
        if smtp:
            body["smtp"] = {
                "host": self.sink.host,
                "port": self.sink.plain_port,
                "security": "none",
                "username": SINK_USER,
                "password": SINK_PASSWORD,
            }
        return body


class SilentServer:
    """Accepts TCP connections and never says a word (issue 8, point 3)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, dovecot_server: DovecotServer, smtp_sink: SmtpSink
) -> Iterator[World]:
    run = start_make_run(tmp_path_factory.mktemp("make-run"))
    silent = SilentServer()
    try:
        # The api function's first sandbox may miss the runner's init limit on a loaded machine
        # (answered 500): the next one starts warm.
        doc = Document(wait_for("the API document", lambda: _document(run), timeout=180))
        user = dovecot_server.add_user(f"{CANARY.lower()}-main", f"{CANARY}-main-password")
        w = World(run, doc, dovecot_server, smtp_sink, user, run.token(TENANT, "owner"), "", "")
        w.silent = silent
        _fill(w)
        yield w
    finally:
        run.stop()
        silent.close()


def _document(run: MakeRun) -> dict[str, Any] | None:
    answer = run.request("GET", "/openapi.json")
    document: dict[str, Any] = answer.json()
    return document if answer.status == 200 else None


def _fill(w: World) -> None:
    me = f"{CANARY.lower()}@example.com"
    carol = f"Carol {CANARY} <carol-{CANARY.lower()}@customer.example>"
    crlf_bcc = "\r\nBcc: " + EVIL
    seeds = {  # name -> (Message-ID, Subject, From, In-Reply-To, multipart rest)
        "first": ("first@customer.example", f"Renewal {CANARY}", carol, None, ""),
        "second": ("second@customer.example", f"Re: Renewal {CANARY}", carol, "first@customer.example", ""),
        # Issue 8, point 1, end to end: headers that decode to a line break and a second header
        "injection": (
            "injection@attacker.example",
            ENCODED_INJECTION,
            f"=?utf-8?b?{b64('Mallory' + crlf_bcc)}?= <mallory-{CANARY.lower()}@attacker.example>",
            None,
            with_attachment(f"=?utf-8?b?{b64('quote.txt' + crlf_bcc)}?="),
        ),
        "clean": (
            "clean@supplier.example",
            f"Quote {CANARY}",
            f"Dan {CANARY} <dan-{CANARY.lower()}@supplier.example>",
            None,
            with_attachment("quote.txt"),
        ),
    }
    for hour, (msgid, subject, sender, refs, extra) in enumerate(seeds.values(), start=9):
        w.server.append(
            w.user, "INBOX", inbound(sender, me, subject, msgid, hour=hour, refs=refs, extra=extra)
        )
    # Given the tenant has campaigns and AI on and two mailboxes connected, the first one synced
    assert w.call("PUT", "/features", {"campaigns": True, "ai": True}).status == 200
    # And its rate limits raised (an admin's override): the probes send thousands of requests
    assert w.call("PUT", "/settings/rate-limits", PROBE_RATE_LIMITS).status == 200
    for user, address, smtp in ((w.user, me, True), (w.fresh_user("second"), f"2-{me}", False)):
        body = {**w.account_body(user, address, smtp=smtp), "display_name": f"Me {CANARY}"}
        created = w.call("POST", "/accounts", body)
        assert created.status == 201, created.body
        w.account_id = w.account_id or created.json()["account_id"]
    w.address = me

    def synced() -> dict[str, Any] | None:
        page: dict[str, Any] = w.call("GET", f"/emails?account_id={w.account_id}&limit=100").json()
        return page if len(page["items"]) == len(seeds) else None

    full = [
        w.call("GET", f"/emails/{item['email_id']}").json()
        for item in wait_for("the first sync", synced)["items"]
    ]
    by_message_id = {item["message_id"]: item for item in full}
    w.emails = {name: by_message_id[msgid]["email_id"] for name, (msgid, *_) in seeds.items()}
    w.thread_id = by_message_id["first@customer.example"]["thread_id"]
    w.quiet_thread_id = by_message_id["clean@supplier.example"]["thread_id"]
    # And two CRM records of each kind (every listing has a second page at limit=1)
    created_records: dict[str, tuple[str, dict[str, Any]]] = {
        "company": ("/crm/companies", {"name": f"Acme {CANARY}", "domains": ["acme-probe.example"]}),
        "company2": ("/crm/companies", {"name": f"Beta {CANARY}"}),
        "contact": (
            "/crm/contacts",
            {"name": f"Carol {CANARY}", "emails": [{"address": f"carol-{CANARY.lower()}@customer.example"}]},
        ),
        "contact2": (
            "/crm/contacts",
            {"name": f"Erin {CANARY}", "emails": [{"address": "erin@probe.example"}]},
        ),
        "deal": ("/crm/deals", {"name": f"Deal {CANARY}"}),
        "deal2": ("/crm/deals", {"name": f"Deal two {CANARY}"}),
        "campaign": ("/crm/campaigns", {"name": f"Spring {CANARY}"}),
        "campaign2": ("/crm/campaigns", {"name": f"Autumn {CANARY}"}),
    }
    for name, (path, body) in created_records.items():
        answer = w.call("POST", path, body)
        assert answer.status == 201, (name, answer.body)
        w.records[name] = answer.json()[f"{name.rstrip('2')}_id"]
    # And a contact that only the erase probe uses (POST /privacy/erase by contact_id erases it)
    erasable = {"name": f"Zed {CANARY}", "emails": [{"address": "zed-erased@probe.example"}]}
    answer = w.call("POST", "/crm/contacts", erasable)
    assert answer.status == 201, answer.body
    w.records["erasable_contact"] = answer.json()["contact_id"]
    # And the deal linked to both messages of the thread, which matching links to Carol
    for name in ("first", "second"):
        link = {"kind": "deal", "record_id": w.records["deal"]}
        assert w.call("POST", f"/emails/{w.emails[name]}/links", link).status == 201
    # And two follow-ups due in hours (the follow-up listing has a second page at limit=1)
    due_at = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in ("second", "clean"):
        flagged = w.call("PUT", f"/emails/{w.emails[name]}/follow-up", {"due_at": due_at})
        assert flagged.status in (200, 201), flagged.body
    wait_for(
        "matching to link Carol's mail to her contact",
        lambda: len(w.call("GET", f"/crm/contacts/{w.records['contact']}/timeline").json()["items"]) >= 2,
    )
    # And a file uploaded as a client does (the presigned POST's fields, then the file)
    ticket = w.call("POST", "/uploads", {"filename": "notes.txt", "content_type": "text/plain", "size": 5})
    assert ticket.status == 201, ticket.body
    posted = requests.post(
        ticket.json()["url"],
        data=ticket.json()["fields"],
        files={"file": ("notes.txt", b"notes")},
        timeout=30,
    )
    assert posted.status_code < 300, posted.text
    w.upload_id = ticket.json()["upload_id"]
    # And for the AI routes (ai is on): a categorize backfill job, and a category rule learnt from
    # two corrections of Carol's mail
    job = w.call("POST", "/ai/categorize/backfill")
    assert job.status == 202, job.body
    w.records["job"] = job.json()["job_id"]
    for name in ("first", "second"):
        corrected = w.call("PATCH", f"/emails/{w.emails[name]}", {"category": "sales"})
        assert corrected.status == 200, corrected.body
    rules = w.call("GET", "/ai/rules").json()["items"]
    assert rules, "two corrections of one sender make a rule"
    w.records["rule"] = rules[0]["rule_id"]
    # And a Salesforce integration connected through the device flow (the user approves the code
    # at the double this run wrote to its state folder), and a suppressed address
    device = w.call("POST", "/crm/integrations/device", {"provider": "salesforce"})
    assert device.status < 300, device.body
    w.records["integration"] = device.json()["integration"]["integration_id"]
    doubles = json.loads((w.run.state_dir / "crm-doubles.json").read_text(encoding="utf-8"))
    approved = requests.post(
        doubles["salesforce"]["login"] + "/__double__/device/approve",
        json={"user_code": device.json()["user_code"]},
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    polled = w.call("POST", f"/crm/integrations/{w.records['integration']}/device/poll")
    assert (polled.status, polled.json().get("status")) == (200, "connected"), polled.body
    for gone in ("gone", "gone2"):  # two: the listing's cursor probe needs a second page
        suppressed = w.call(
            "POST", "/crm/suppressions", {"address": f"{gone}-{CANARY.lower()}@customer.example"}
        )
        assert suppressed.status < 300, suppressed.body
    w.records["suppressed"] = f"gone-{CANARY.lower()}@customer.example"
    # And two templates, the first saved twice (both listings have a second page at limit=1)
    for name in ("template", "template2"):
        created = w.call("POST", "/templates", template_body())
        assert created.status == 201, created.body
        w.records[name] = created.json()["template_id"]
    saved = w.call("PUT", f"/templates/{w.records['template']}", {**template_body(), "version": 1})
    assert saved.status == 200, saved.body
    # And three drafts: one the PUT probes change, one the send probes send, one more for the listing
    for name in ("draft", "draft2", "draft_to_send"):
        created = w.call("POST", "/drafts", draft_body(w))
        assert created.status == 201, created.body
        w.records[name] = created.json()["draft_id"]


def template_body() -> dict[str, Any]:
    """A template holding every field, with two A/B variants (B, listed first, overrides every source)."""
    return {
        "name": f"Template {CANARY}",
        "description": f"About {CANARY}",
        "subject": "Hello {{ contact.first_name }} " + CANARY,
        "html": "<p>Hi {{ contact.first_name }}, {{ offer }}</p> " + CANARY,
        "text": "Hi {{ contact.first_name }},\n{{ offer }} " + CANARY,
        "variables": [  # every value declared with a default: it renders for any recipient
            {"name": "offer", "default": f"Offer {CANARY}", "description": f"What {CANARY}"},
            {"name": "contact.first_name", "default": "there"},
        ],
        "variants": [  # the probes change the first item of a list: B, the one with every field
            {
                "name": "B",
                "split": 50,
                "subject": f"Quick question {CANARY}",
                "html": f"<p>B {CANARY}</p>",
                "text": f"B {CANARY}",
            },
            {"name": "A", "split": 50},
        ],
        "winner_metric": "reply_rate",
    }


def draft_body(w: World) -> dict[str, Any]:
    """A complete draft (a recipient and a text: it can be sent)."""
    return {
        "account_id": w.account_id,
        "to": [{"address": f"draft-{CANARY.lower()}@customer.example", "name": f"Draft {CANARY}"}],
        "subject": f"Draft {CANARY}",
        "text": f"Draft text {CANARY}",
    }


# ------------------------------------------------------------------------------------ request bodies


def concrete(route: str, w: World) -> str:
    """The route's path with this world's ids."""
    path = route.split(" ", 1)[1]
    # Snoozing hides mail from listings and search: the snooze probes take the "clean" message and
    # its thread, so the Renewal thread the read probes look for stays listed
    snooze = path.endswith("/snooze")
    ids = {
        "account_id": w.account_id,
        "email_id": w.emails["clean" if snooze else "first"],
        "thread_id": w.quiet_thread_id if snooze else w.thread_id,
        # A PATCH replaces the contact's addresses: change Erin, keep Carol's mail linked to Carol
        "contact_id": w.records["contact2" if route.startswith("PATCH ") else "contact"],
        "company_id": w.records["company"],
        "deal_id": w.records["deal"],
        "campaign_id": w.records["campaign"],
        "nudge_id": w.emails["first"],  # no nudge: the dismiss probes answer 404 nudge_not_found
        "job_id": w.records["job"],
        "rule_id": w.records["rule"],
        "template_id": w.records["template"],
        "integration_id": w.records["integration"],
        "address": w.records["suppressed"],
        "version": "1",
        # Sending takes the draft out of the listing: the send probes send a draft of their own
        "draft_id": w.records["draft_to_send" if path.endswith("/send") else "draft"],
    }
    return re.sub(r"\{(\w+)\}", lambda m: ids[m[1]], path)


def base_bodies(w: World) -> dict[str, list[Callable[[], dict[str, Any]]]]:
    """Per body route, valid bodies that together hold every field (called once for the control
    request, then for each probe). Values the store keeps unique are fresh on every call."""
    n = iter(range(10**6))
    send_at = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def unique(kind: str) -> str:
        return f"{kind}-{CANARY.lower()}-{next(n)}"

    def sends() -> dict[str, Any]:  # what a campaign sends, to whom and how fast
        return {
            "template_id": w.records["template"],
            "audience": {"tags": [f"tag-{CANARY}"], "contact_ids": [w.records["contact"]]},
            "account_id": w.account_id,
            "schedule_at": send_at,
            "throttle_per_hour": 50,
            "variables": {"offer": f"Offer {CANARY}"},
        }

    def recipient(kind: str) -> dict[str, str]:
        return {"address": f"{kind}-{CANARY.lower()}@customer.example", "name": f"{kind.title()} {CANARY}"}

    def contact() -> dict[str, Any]:
        return {
            "name": f"Name {CANARY}",
            "emails": [{"address": f"{unique('c')}@people.example", "label": f"work {CANARY}"}],
            "phones": ["+1 555 0100"],
            "title": f"Title {CANARY}",
            "company_id": w.records["company"],
            "tags": [f"tag-{CANARY}"],
            "owner": f"owner-{CANARY}",
            "custom": {"note": f"note {CANARY}"},
        }

    def deal() -> dict[str, Any]:
        return {
            "name": f"Deal {CANARY}",
            "stage": "qualified",
            "amount": "1250.50",
            "currency": "EUR",
            "contact_ids": [w.records["contact"]],
            "company_id": w.records["company"],
            "owner": f"owner-{CANARY}",
            "close_date": "2031-03-01",
        }

    def account() -> dict[str, Any]:
        user = w.fresh_user("acct")
        return {
            **w.account_body(user, f"{unique('acct')}@example.com"),
            "display_name": f"Probe {CANARY}",
            "folders": [f"Projects {CANARY}"],
        }

    def account_patch() -> dict[str, Any]:
        return {
            "display_name": f"Me {CANARY}",
            "folders": [f"Archive {CANARY}"],
            "visibility": "metadata",  # the caller owns the mailbox (mailbridge.access)
            "imap": {"password": w.user.password},
            "smtp": {
                "host": w.sink.host,
                "security": "none",
                "username": SINK_USER,
                "password": SINK_PASSWORD,
            },
        }

    def send_reply() -> dict[str, Any]:
        return {
            "account_id": w.account_id,
            "to": [recipient("to")],
            "cc": [recipient("cc")],
            "bcc": [recipient("bcc")],
            "subject": f"Subject {CANARY}",
            "text": f"Text {CANARY}",
            "html": f"<p>Html {CANARY}</p>",
            "reply_to_email_id": w.emails["first"],
            "attachments": [
                {
                    "filename": f"inline-{CANARY}.txt",
                    "content_type": "text/plain",
                    "content_base64": b64(CANARY),
                    "inline": True,
                    "content_id": f"img-{CANARY}@example.com",
                }
            ],
        }

    def send_forward() -> dict[str, Any]:
        return {
            "account_id": w.account_id,
            "to": [recipient("fwd")],
            "subject": f"Fwd {CANARY}",
            "text": f"Forwarded {CANARY}",
            "forward_email_id": w.emails["clean"],
            "forward_as": "inline",
            "attachments": [
                {"upload_id": w.upload_id, "filename": f"up-{CANARY}.txt", "content_type": "text/plain"}
            ],
            "send_at": send_at,
        }

    def send_template() -> dict[str, Any]:
        return {
            "account_id": w.account_id,
            "to": [recipient("tpl")],
            "template_id": w.records["template"],
            "template_version": 1,
            "variables": {"offer": f"Offer {CANARY}"},
            "send_at": send_at,
        }

    def without_send_at(make: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        return lambda: {k: v for k, v in make().items() if k != "send_at"}

    def template_update() -> dict[str, Any]:  # carries state: the version read now
        version = w.call("GET", f"/templates/{w.records['template']}").json()["version"]
        return {**template_body(), "version": version}

    def action(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An assist action as nba suggests it; a fresh action_id per call (a repeat only replays)."""
        return {
            "action": {
                "action_id": f"act_{uuid.uuid4().hex[:24]}",
                "type": kind,
                "title": f"Title {CANARY}",
                "reason": f"Reason {CANARY}",
                "payload": payload,
            }
        }

    def meeting() -> dict[str, Any]:
        def at(day: int, hour: int) -> dict[str, str]:
            return {"date_time": f"2030-01-{day:02d}T{hour:02d}:00:00", "time_zone": "Europe/Berlin"}

        person = {
            "address": f"guest-{CANARY.lower()}@people.example",
            "name": f"Guest {CANARY}",
            "partstat": "accepted",
            "role": "opt-participant",
        }
        return {
            "title": f"Meeting {CANARY}",
            "description": f"Agenda {CANARY}",
            "location": f"Room {CANARY}",
            "start": at(7, 10),
            "end": at(7, 11),
            "status": "confirmed",
            "organizer": {"address": w.address, "name": f"Me {CANARY}"},
            "attendees": [person],
            "recurrence": {
                "rrule": ["FREQ=WEEKLY;COUNT=5"],
                "rdate": ["2030-02-20T10:00:00"],
                "exdate": ["2030-01-14T10:00:00"],
            },
            "overrides": [
                {
                    "recurrence_id": "2030-01-21T10:00:00",
                    "title": f"Moved {CANARY}",
                    "description": f"Moved {CANARY}",
                    "location": f"Hall {CANARY}",
                    "start": at(22, 10),
                    "end": at(22, 11),
                    "status": "confirmed",
                    "attendees": [person],
                }
            ],
            "contact_ids": [w.records["contact"]],
            "company_id": w.records["company"],
            "deal_id": w.records["deal"],
        }

    return {
        "POST /accounts": [account],
        "PATCH /accounts/{account_id}": [account_patch],
        "PATCH /emails/{email_id}": [
            lambda: {"read": True, "flagged": False},
            lambda: {"category": "support"},
        ],
        "POST /emails/send": [send_reply, send_forward, send_template],
        "POST /uploads": [lambda: {"filename": f"f-{CANARY}.txt", "content_type": "text/plain", "size": 10}],
        "POST /emails/{email_id}/links": [lambda: {"kind": "contact", "record_id": w.records["contact2"]}],
        # Snooze and follow-ups (issue 15): hours ahead, so nothing wakes while the probes run.
        "PUT /emails/{email_id}/snooze": [
            lambda: {"until": send_at, "wake_on_reply": True},
            lambda: {"preset": "tomorrow", "time_zone": "Europe/Berlin"},
        ],
        "PUT /threads/{thread_id}/snooze": [
            lambda: {"until": send_at},
            lambda: {"preset": "next_week", "time_zone": "America/New_York", "wake_on_reply": True},
        ],
        "PUT /emails/{email_id}/follow-up": [
            lambda: {"due_at": send_at, "priority": "high", "note": f"Note {CANARY}"}
        ],
        "PUT /features": [lambda: {"campaigns": True}],
        "POST /crm/integrations": [lambda: {"provider": "salesforce", "name": f"Org {CANARY}"}],
        "POST /crm/integrations/device": [lambda: {"provider": "salesforce", "name": f"Org {CANARY}"}],
        # The connected Salesforce integration (issue 18): its mapping, a contact sync, a campaign
        "PUT /crm/integrations/{integration_id}/mapping": [
            lambda: {
                "fields": [
                    {"local": "email", "remote": "Email"},
                    {"local": "last_name", "remote": "LastName"},
                    {"local": "first_name", "remote": "FirstName"},
                ],
                "conflict_policy": "newest_wins",
                "deletions": "none",
            }
        ],
        "POST /crm/sync/contacts": [lambda: {"integration_id": w.records["integration"]}, dict],
        "POST /crm/sync/campaigns": [
            lambda: {"integration_id": w.records["integration"], "campaign_id": w.records["campaign"]},
            dict,
        ],
        "PUT /crm/integrations/{integration_id}/activity": [
            lambda: {"log_activity": True, "log_body": False}
        ],
        "POST /crm/suppressions": [lambda: {"address": f"{unique('supp')}@customer.example"}],
        "PUT /settings/rate-limits": [lambda: dict(PROBE_RATE_LIMITS)],
        "PUT /nudges/settings": [
            lambda: {
                "enabled": True,
                "business_days": 3,
                "working_days": [1, 2, 3, 4, 5],
                "time_zone": "Europe/Berlin",
                "holidays": ["2026-12-24"],
            }
        ],
        # Notifications (issue 15 point 4): the caller's own preferences; the tenant's digest sender
        "PUT /notifications/preferences": [
            lambda: {
                "types": {"nudge": "email_digest", "automation_failed": "off"},
                "digest_frequency": "weekly",
            }
        ],
        "PUT /notifications/settings": [lambda: {"digest_sender_account_id": w.account_id}],
        "POST /crm/contacts": [contact],
        "PATCH /crm/contacts/{contact_id}": [lambda: {**contact(), "company_id": w.records["company2"]}],
        "POST /crm/companies": [
            lambda: {"name": f"Co {CANARY}", "domains": [f"{unique('co')}.example"], "owner": f"o-{CANARY}"}
        ],
        "PATCH /crm/companies/{company_id}": [
            lambda: {"name": f"Co {CANARY}", "domains": [f"{unique('co')}.example"], "owner": f"o-{CANARY}"}
        ],
        "POST /crm/deals": [deal],
        "PATCH /crm/deals/{deal_id}": [deal],
        "PUT /crm/pipeline": [
            lambda: {"stages": ["lead", "qualified", "proposal", "negotiation", "won", "lost"]}
        ],
        "POST /crm/campaigns": [lambda: {"name": f"Campaign {CANARY}", "status": "draft", **sends()}],
        # Paused, so what it sends may change (409 campaign_not_editable while active)
        "PATCH /crm/campaigns/{campaign_id}": [
            lambda: {"name": f"Campaign {CANARY}", "status": "paused", **sends()}
        ],
        # AI (issue 14): Carol's mail; extract-lead applies to her contact and her domain's company
        "POST /ai/categorize-email": [lambda: {"email_id": w.emails["first"]}],
        "POST /ai/extract-lead": [lambda: {"email_id": w.emails["first"], "apply": True}],
        # Left off: every probe's body is valid apart from the probed field, so Bedrock stays unused.
        "PUT /ai/bedrock": [
            lambda: {
                "enabled": False,
                "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
                "region": "eu-west-1",
                "daily_token_budget": 1000,
            }
        ],
        # Enrichment of Carol's contact and company: the provider is off (no request leaves)
        "POST /ai/assist/enrich": [
            lambda: {"contact_id": w.records["contact"]},
            lambda: {"company_id": w.records["company"]},
        ],
        "PUT /ai/enrichment": [
            lambda: {"enabled": False, "base_url": "https://api.peopledatalabs.com", "api_key": "probe-key"}
        ],
        # The assist panel (issue 14 point 6) on Carol's mail, contact and deal
        "POST /ai/generate-reply": [lambda: {"email_id": w.emails["second"], "tone": "formal"}],
        "POST /ai/assist/summarize": [
            lambda: {"contact_id": w.records["contact"]},
            lambda: {"deal_id": w.records["deal"]},
            lambda: {"thread_id": w.thread_id},
        ],
        "POST /ai/assist/draft_email": [lambda: {"contact_id": w.records["contact"], "goal": "check_in"}],
        "POST /ai/assist/nba": [
            lambda: {"contact_id": w.records["contact"]},
            lambda: {"deal_id": w.records["deal"]},
        ],
        # One action of each type (the union's fields): the task, email, deal and event routes' bodies
        "POST /ai/assist/apply": [
            lambda: action(
                "create_task",
                {
                    "title": f"Call {CANARY}",
                    "description": f"Ask {CANARY}",
                    "due": "2030-01-10T09:00:00Z",
                    "priority": "high",
                    "assignee": f"owner-{CANARY}",
                    "contact_id": w.records["contact"],
                    "company_id": w.records["company"],
                    "deal_id": w.records["deal"],
                    "email_id": w.emails["first"],
                },
            ),
            lambda: action(
                "send_email",
                {
                    "account_id": w.account_id,
                    "to": [recipient("nba")],
                    "subject": f"Re: Renewal {CANARY}",
                    "text": f"Thanks {CANARY}",
                    "reply_to_email_id": w.emails["second"],
                },
            ),
            lambda: action("update_deal", {"deal_id": w.records["deal"], "changes": deal()}),
            lambda: action("schedule_meeting", meeting()),
            lambda: action(
                "schedule_meeting",
                {
                    "title": f"Offsite {CANARY}",
                    "start": {"date": "2030-03-04"},
                    "end": {"date": "2030-03-05"},
                    "recurrence": {"rrule": ["FREQ=DAILY;COUNT=3"], "rdate": ["2030-03-10"]},
                    "overrides": [
                        {
                            "recurrence_id": "2030-03-06",
                            "start": {"date": "2030-03-07"},
                            "end": {"date": "2030-03-08"},
                        }
                    ],
                },
            ),
        ],
        # Templates: saved (a new version per PUT, at the version read), previewed for Carol
        "POST /templates": [template_body],
        "PUT /templates/{template_id}": [template_update],
        "POST /templates/{template_id}/preview": [
            lambda: {"contact_id": w.records["contact"], "version": 1, "variant": "B"}
        ],
        # Drafts: POST /emails/send's bodies without send_at; PUT sends If-Match (World.headers)
        "POST /drafts": [without_send_at(send_reply), without_send_at(send_forward)],
        "PUT /drafts/{draft_id}": [without_send_at(send_reply), without_send_at(send_forward)],
        "POST /drafts/{draft_id}/send": [lambda: {"send_at": send_at}],
        # GDPR (issue 19 point 5): erase an address nobody holds and the contact kept for it; export
        # Erin and Carol (an export changes nothing); the longest retention (no world mail is that old)
        "POST /privacy/erase": [
            lambda: {"email": "nobody-erased@probe.example"},
            lambda: {"contact_id": w.records["erasable_contact"]},
        ],
        "POST /privacy/export": [
            lambda: {"email": "erin@probe.example"},
            lambda: {"contact_id": w.records["contact"]},
        ],
        "PUT /settings/retention": [lambda: {"retention_days": 36500}],
        "PUT /crm/settings": [
            lambda: {
                "auto_create": "sent",
                "own_domains": ["example.com"],
                "blocklist": {
                    "addresses": [f"block-{CANARY.lower()}@spam.example"],
                    "domains": ["spam.example"],
                },
            }
        ],
        # Mailbox privacy (issue 19 point 2): the defaults, so the world's reads are unchanged.
        "PUT /settings/privacy": [lambda: {"default_visibility": "metadata", "admin_view": "as_shared"}],
    }


def run_all(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
        return list(clients.map(lambda fn: fn(), calls))


# ------------------------------------------------------------------------------------------- tests


def test_every_route_documents_a_success_response_with_a_schema(world: World) -> None:
    # When the API document is read through make run
    answer = world.run.request("GET", "/openapi.json")
    assert answer.status == 200
    document = Document(answer.json())
    # Then it holds every route of the template (but the document and Swagger UI themselves)
    template = load_template([ROOT / "template.yaml"])
    routes = {r.route_key for r in template.routes() if r.path not in ("/openapi.json", "/docs")}
    assert routes - {route for route, _ in document.operations()} == set()
    # And every operation has a 2xx response with a schema (JSON, or the media type it answers
    # with, e.g. text/calendar for the ICS export and feed), or a redirect documenting its Location
    # (tracked links)
    missing = [
        route
        for route, op in document.operations()
        if not any(
            (
                status.startswith("2")
                and any(media.get("schema") for media in response.get("content", {}).values())
            )
            or (status.startswith("3") and response.get("headers", {}).get("Location", {}).get("schema"))
            for status, response in op["responses"].items()
        )
    ]
    assert missing == []


def wanted_keys(path: Path_) -> list[str | int]:
    """The keys `names_field` looks for in an error's `loc`, in order."""
    return [0 if key == "[]" else key for key in path if key != "*"]


def is_subsequence(short: Sequence[str | int], long: Sequence[str | int]) -> bool:
    rest = iter(long)
    return all(any(part == key for part in rest) for key in short)


def apart(paths: Sequence[Path_]) -> list[list[Path_]]:
    """`paths` in groups whose errors `names_field` cannot mistake for each other's (no field's keys
    are a subsequence of another's) and where no field lies inside another."""
    groups: list[list[Path_]] = []
    for path in paths:
        keys = wanted_keys(path)
        for group in groups:
            if not any(
                is_subsequence(keys, wanted_keys(other)) or is_subsequence(wanted_keys(other), keys)
                for other in group
            ):
                group.append(path)
                break
        else:
            groups.append([path])
    return groups


def test_control_characters_in_every_text_field_of_every_body_route_are_refused(world: World) -> None:
    """Each (field, probe value) pair is checked. A value every field of a group must refuse goes
    into all of them in one request (pydantic reports every field's error: each must be named in
    the 422); a field the group's answer does not name is probed alone, as are values a field may
    accept (whatever it answers must be below 500) and fields the service checks after validation."""
    bases = world.base_bodies()
    body_routes = world.doc.body_routes()
    # Given a valid body per route holding every string field the document lists
    assert set(bases) == set(body_routes), "a body route without a base body: add one to base_bodies"

    def send(route: str, body: Any) -> Callable[[], Answer]:
        def call() -> Answer:  # headers read when sent: the If-Match of a draft others just changed
            return world.call(
                route.split(" ", maxsplit=1)[0], world.concrete(route), body, headers=world.headers(route)
            )

        return call

    grouped: list[tuple[str, list[Path_], str, Callable[[], Any]]] = []  # route, fields, label, base
    alone: list[tuple[str, Path_, str, Any]] = []  # route, field, label, body
    for route, schema in body_routes.items():
        strings = world.doc.fields(schema, is_string)
        samples = [make() for make in bases[route]]
        uncovered = sorted(p for p in strings if not any(has_path(sample, p) for sample in samples))
        assert uncovered == [], f"{route}: add these fields to its base body"
        # And each valid body is accepted as it is (so a refusal below is the probed fields' doing)
        for make in bases[route]:  # made again: a body may carry state (the version a PUT read)
            control = send(route, make())()
            assert 200 <= control.status < 300, (route, control.status, control.body[:300])
        for make, sample in zip(bases[route], samples, strict=True):
            paths = sorted(p for p in strings if has_path(sample, p))
            for label, value in {**TEXT_PROBES, **HEADER_PROBES}.items():
                probed = [p for p in paths if label in TEXT_PROBES or field_kind(route, p) == "header"]
                together = [
                    p
                    for p in probed
                    if label in REFUSES[field_kind(route, p)] and (route, p) not in SERVICE_CHECKED
                ]
                # A fresh body per probe: a value one field may accept must not make the next
                # probe fail for another reason (an address now taken, say).
                alone += [
                    (route, p, label, with_value(make(), p, value)) for p in probed if p not in together
                ]
                grouped += [(route, group, label, make) for group in apart(together)]
    checked = sum(len(g[1]) for g in grouped) + len(alone)

    def all_of(route: str, group: list[Path_], label: str, make: Callable[[], Any]) -> Any:
        body = make()
        for path in group:
            body = with_value(body, path, {**TEXT_PROBES, **HEADER_PROBES}[label])
        return body

    # When each group of string fields gets, in one request, each probe value its fields must refuse
    answers = run_all([send(g[0], all_of(*g)) for g in grouped])
    wrong = []
    for (route, group, label, make), answer in zip(grouped, answers, strict=True):
        if not well_formed(answer):
            wrong.append((route, ",".join(".".join(p) for p in group), label, answer.status, answer.code))
            continue
        # (a field the answer does not name, e.g. beside a union tag that failed, is probed alone)
        value = {**TEXT_PROBES, **HEADER_PROBES}[label]
        alone += [
            (route, p, label, with_value(make(), p, value)) for p in group if not refused(answer, route, p)
        ]
    # And every other (field, value) pair is sent alone
    answers = run_all([send(route, body) for route, _, _, body in alone])
    # Then nothing is a 5xx, and every field refuses what its kind must refuse, naming the field
    for (route, path, label, _), answer in zip(alone, answers, strict=True):
        must_refuse = label in REFUSES[field_kind(route, path)]
        if not well_formed(answer) or (must_refuse and not refused(answer, route, path)):
            wrong.append((route, ".".join(path), label, answer.status, answer.code))
    assert wrong == [], "\n".join(map(str, wrong))
    assert checked > 300


def test_a_reply_and_a_forward_of_mail_whose_headers_decode_to_injections_send_no_extra_header(
    world: World,
) -> None:
    # Given synced mail whose Subject, From name and attachment file name decode to CR LF + "Bcc:",
    # and a clean message of the same shape
    mallory = f"mallory-{CANARY.lower()}@attacker.example"
    sends = {
        "reply": {"reply_to_email_id": world.emails["injection"]},
        "reply_clean": {"reply_to_email_id": world.emails["clean"]},
        "forward": {"forward_email_id": world.emails["injection"], "forward_as": "inline"},
        "forward_clean": {"forward_email_id": world.emails["clean"], "forward_as": "inline"},
        "forward_attached": {"forward_email_id": world.emails["injection"], "forward_as": "attachment"},
        "forward_attached_clean": {"forward_email_id": world.emails["clean"], "forward_as": "attachment"},
    }
    # When each is answered with no subject of the caller's
    sent_ids = {}
    for name, extra in sends.items():
        body = {"account_id": world.account_id, "to": [{"address": mallory}], "text": f"ok {CANARY}", **extra}
        answer = world.call("POST", "/emails/send", body)
        assert answer.status == 202, (name, answer.body)
        sent_ids[name] = answer.json()["email_id"]
    for name, email_id in sent_ids.items():
        state = wait_for(f"{name} to be sent", partial(_finished_send, world, email_id))
        assert state["status"] == "sent", (name, state["failure"])
    # Then the bytes the SMTP sink received and the raw message the outbox stored have exactly the
    # header fields of the clean message's answer: no Bcc, no second header from a decoded value
    by_message_id = {}
    for received in world.sink.messages:
        parsed = email.message_from_bytes(received.raw, policy=policy.compat32)
        by_message_id[parsed["Message-ID"].strip("<>")] = received
    shapes, sent = {}, {}
    for name, email_id in sent_ids.items():
        received = by_message_id[world.call("GET", f"/emails/{email_id}").json()["message_id"]]
        assert received.rcpt_tos == [mallory], name  # the envelope too: nobody else got it
        url = world.call("GET", f"/emails/{email_id}/raw").json()["url"]
        with urllib.request.urlopen(url, timeout=30) as response:  # presigned moto URL on loopback
            stored = response.read()
        assert header_lines_are_fields_or_folds(received.raw), name
        assert header_shape(stored) == header_shape(received.raw), name
        assert "bcc" not in {h for part in header_shape(received.raw) for h in part}, name
        shapes[name] = header_shape(received.raw)
        sent[name] = email.message_from_bytes(received.raw, policy=policy.default)
    for name in ("reply", "forward", "forward_attached"):
        assert shapes[name] == shapes[f"{name}_clean"], name
    # And the subjects made from the decoded ones ("Re: ...", "Fwd: ...") arrive on one line each
    # (an inline forward carries the original's text, not its attachments: compose/build.py)
    subjects = {name: str(sent[name]["Subject"]) for name in ("reply", "forward", "forward_attached")}
    assert {name: s for name, s in subjects.items() if "\r" in s or "\n" in s} == {}


def _finished_send(world: World, email_id: str) -> dict[str, Any] | None:
    state: dict[str, Any] = world.call("GET", f"/emails/{email_id}").json()
    return state if state["status"] in ("sent", "failed") else None


def test_json_nested_1000_and_100000_levels_deep_is_a_400_on_every_body_route(world: World) -> None:
    # Given bodies nested 1,000 and 100,000 levels deep, as arrays and as objects
    bodies = {
        f"{kind}-{depth}": raw
        for depth in (1000, 100_000)
        for kind, raw in (
            ("array", b"[" * depth + b"]" * depth),
            ("object", b'{"a":' * depth + b"1" + b"}" * depth),
        )
    }
    probes = [
        (route, label, lambda r=route, b=raw: world.call(r.split(" ")[0], world.concrete(r), raw=b))
        for route in world.doc.body_routes()
        for label, raw in bodies.items()
    ]
    # When each body route gets each
    answers = run_all([probe[2] for probe in probes])
    # Then 400 json_too_deep, never a 500 (RecursionError)
    wrong = [
        (route, label, a.status, a.code)
        for (route, label, _), a in zip(probes, answers, strict=True)
        if (a.status, a.code) != (400, "json_too_deep")
    ]
    assert wrong == [], "\n".join(map(str, wrong))


NUMBERS = ["1e308", "-1e308", "1" + "0" * 41, "1e-200", "1e400", "-1e400", "NaN", "Infinity", "-Infinity"]


def test_numbers_out_of_dynamodbs_range_and_not_finite_are_refused_on_every_number_field(
    world: World,
) -> None:
    bases = world.base_bodies()
    probes = []
    for route, schema in world.doc.body_routes().items():
        numbers = world.doc.fields(schema, is_number) | {("custom", "*")} & world.doc.fields(
            schema, is_string
        )
        for path in sorted(numbers):
            sample = next((s for s in (make() for make in bases[route]) if has_path(s, path[:-1])), None)
            if sample is None and len(path) == 1:
                sample = bases[route][0]()
            assert sample is not None, (route, path)
            for literal in NUMBERS:
                text = json.dumps(with_value(sample, path, "__number__")).replace('"__number__"', literal)
                method, url = route.split(" ")[0], world.concrete(route)
                probes.append(
                    (route, path, literal, lambda m=method, u=url, t=text: world.call(m, u, raw=t.encode()))
                )
    # When every number field (CRM custom fields, amounts, sizes, ports, versions) gets each number
    answers = run_all([probe[3] for probe in probes])
    # Then 400 invalid_json (NaN, Infinity are not JSON) or 422 naming the field; never 500, never 409
    wrong = [
        (route, ".".join(path), literal, a.status, a.code)
        for (route, path, literal, _), a in zip(probes, answers, strict=True)
        if not ((a.status, a.code) == (400, "invalid_json") or names_field(a, path))
    ]
    assert wrong == [], "\n".join(map(str, wrong))
    assert {route for route, *_ in probes} >= world.number_routes


def _tampered(cursor: str) -> dict[str, str]:
    middle = len(cursor) // 2
    flip = "A" if cursor[middle] != "A" else "B"
    last = "A" if cursor[-1] != "A" else "B"
    unsigned = base64.urlsafe_b64encode(
        json.dumps({"pk": {"S": f"TENANT#{TENANT}"}, "sk": {"S": "X"}}).encode()
    )
    inexact = base64.urlsafe_b64encode(
        json.dumps({"pk": {"N": "1e999999"}, "sk": {"N": "0.1e-999999"}}).encode()
    )
    return {
        "edited": cursor[:middle] + flip + cursor[middle + 1 :],
        "last_character": cursor[:-1] + last,
        "truncated": cursor[: len(cursor) * 2 // 3],
        "extended": cursor + "AAAA",
        "forged_unsigned": unsigned.decode().rstrip("="),
        "forged_inexact": inexact.decode().rstrip("="),
        "not_base64": f"{CANARY}!*",
    }


# Paged listings the world cannot fill through make run, each with the reason and the test that
# attacks its cursors in-process instead.
UNFILLED_LISTINGS = {
    # nudges need three business days to pass: moving the runner's clock that far would wake the
    # world's snoozes and scheduled sends that the other probes rely on
    "GET /nudges": "tests/integration/test_api_nudges.py::test_edited_and_foreign_nudge_cursors_are_a_400",
    # notifications come from source events (a nudge, a due follow-up, a failed send ...) that the
    # world does not make without moving the clock; another user's cursor is refused in-process
    "GET /notifications": (
        "tests/integration/test_notifications.py::test_unread_count_read_and_read_all_touch_only_the_callers_own"
    ),
    # sync runs of a CRM integration need a connected org and a sync (the sync service is next)
    "GET /crm/integrations/{integration_id}/logs": (
        "tests/integration/test_crm_sync_logs.py::test_a_cursor_of_another_integrations_logs_is_refused"
    ),
}


def test_edited_forged_and_foreign_cursors_are_a_400_on_every_paged_listing(world: World) -> None:
    other = world.run.token("other-tenant", "owner")
    paged = [route for route in world.doc.paged_routes() if route not in UNFILLED_LISTINGS]
    # Given a real second-page cursor of every paged listing
    cursors: dict[str, str] = {}
    for route in paged:
        url = world.concrete(route)
        first = world.call("GET", f"{url}?limit=1")
        assert first.status == 200, (route, first.body)
        cursor = first.json().get("next_cursor")
        assert cursor, f"{route}: the probe world needs two items in this listing"
        cursors[route] = cursor
        # And following it works
        assert world.call("GET", f"{url}?limit=1&cursor={cursor}").status == 200, route
    probes = []
    for route in paged:
        url = world.concrete(route)
        cases = _tampered(cursors[route])
        cases["other_listing"] = next(c for r, c in cursors.items() if world.concrete(r) != url)
        for label, cursor in cases.items():
            query = urllib.parse.urlencode({"limit": 1, "cursor": cursor})
            probes.append((route, label, lambda u=url, q=query: world.call("GET", f"{u}?{q}")))
        # And the right cursor presented by another tenant
        query = urllib.parse.urlencode({"limit": 1, "cursor": cursors[route]})
        probes.append(
            (route, "other_tenant", lambda u=url, q=query: world.call("GET", f"{u}?{q}", token=other))
        )
    # When each is presented
    answers = run_all([probe[2] for probe in probes])
    # Then 400 invalid_cursor (another tenant: the same, or the 404 of a record it cannot see or
    # of a feature it has off, such as campaigns)
    wrong = [
        (route, label, a.status, a.code)
        for (route, label, _), a in zip(probes, answers, strict=True)
        if (a.status, a.code) != (400, "invalid_cursor")
        and not (label == "other_tenant" and a.status == 404 and a.code)
    ]
    assert wrong == [], "\n".join(map(str, wrong))


def test_a_mail_server_that_accepts_and_never_speaks_gets_a_timeout_answer_in_time(world: World) -> None:
    assert world.silent is not None
    silent = world.silent
    # Given a server that accepts connections and never answers, named as IMAP and as SMTP server
    user = world.fresh_user("silent")
    imap_silent = world.account_body(user, f"silent-{CANARY.lower()}@example.com", smtp=False)
    imap_silent["imap"]["port"] = silent.port
    smtp_silent = {
        "smtp": {
            "host": "127.0.0.1",
            "port": silent.port,
            "security": "none",
            "username": f"u-{CANARY}",
            "password": f"p-{CANARY}",
        }
    }
    before = world.call("GET", f"/accounts/{world.account_id}").json()
    # When a mailbox is connected to it, and an account's SMTP settings are changed to it
    connect, change = run_all(
        [
            lambda: world.call("POST", "/accounts", imap_silent),
            lambda: world.call("PATCH", f"/accounts/{world.account_id}", smtp_silent),
        ]
    )
    # Then each answers 422 timeout, naming the server, inside the API's own timeout (else a 500)
    assert (connect.status, connect.code) == (422, "timeout"), connect.body
    assert connect.json()["error"]["details"]["server"] == "imap"
    assert (change.status, change.code) == (422, "timeout"), change.body
    assert change.json()["error"]["details"]["server"] == "smtp"
    # And nothing was saved
    assert world.call("GET", f"/accounts/{world.account_id}").json()["smtp"] == before["smtp"]
    accounts = world.call("GET", "/accounts?limit=100").json()["items"]
    assert f"silent-{CANARY.lower()}@example.com" not in [a["address"] for a in accounts]


def test_inline_attachments_that_broke_compose_are_refused(world: World) -> None:
    base = {
        "account_id": world.account_id,
        "to": [{"address": f"to-{CANARY.lower()}@customer.example"}],
        "text": "x",
    }
    inline = {"filename": "a.png", "content_type": "image/png", "content_base64": b64(CANARY), "inline": True}
    cases = {
        "content_id_gt": (("attachments", "[]", "content_id"), {**inline, "content_id": f"a>{CANARY}"}),
        "content_id_cr_lf": (
            ("attachments", "[]", "content_id"),
            {**inline, "content_id": f"{CANARY}\r\nBcc: {EVIL}"},
        ),
        "multipart": (
            ("attachments", "[]", "content_type"),
            {"filename": "a.bin", "content_type": "multipart/mixed", "content_base64": b64(CANARY)},
        ),
    }
    for label, (path, attachment) in cases.items():
        # When
        answer = world.call("POST", "/emails/send", {**base, "attachments": [attachment]})
        # Then 422 naming the field, not a 500 from compose
        assert names_field(answer, path), (label, answer.status, answer.body[:300])


def test_uniqueness_holds_beyond_the_first_page_and_for_the_imap_login(world: World) -> None:
    token = world.run.token("crowd", "owner")
    users = [world.fresh_user(f"crowd{i}") for i in range(101)]
    # Given 101 connected mailboxes (more than a page of 100)
    bodies = [
        world.account_body(u, f"crowd{i}-{CANARY.lower()}@example.com", smtp=False)
        for i, u in enumerate(users)
    ]
    created = run_all([partial(world.call, "POST", "/accounts", body, token) for body in bodies])
    assert [a.status for a in created] == [201] * 101
    first = world.call("GET", "/accounts?limit=100", token=token).json()
    second = world.call("GET", f"/accounts?limit=100&cursor={first['next_cursor']}", token=token).json()
    [on_second_page] = second["items"]
    held = next(u for u in users if u.name == on_second_page["imap"]["username"])
    # When the address on the second page is connected again (another login)
    again = world.call(
        "POST",
        "/accounts",
        world.account_body(world.fresh_user("dup"), on_second_page["address"], smtp=False),
        token=token,
    )
    # Then 409 account_exists naming the address
    assert (again.status, again.code) == (409, "account_exists"), again.body
    assert again.json()["error"]["details"] == {"field": "address"}
    # When the same IMAP login is connected under another address
    same_login = world.call(
        "POST",
        "/accounts",
        world.account_body(held, f"other-{CANARY.lower()}@example.com", smtp=False),
        token=token,
    )
    # Then 409 account_exists naming the login
    assert (same_login.status, same_login.code) == (409, "account_exists"), same_login.body
    assert same_login.json()["error"]["details"] == {"field": "login"}
    # And there are still 101 accounts
    listed = world.call("GET", "/accounts?limit=100", token=token).json()
    rest = world.call("GET", f"/accounts?limit=100&cursor={listed['next_cursor']}", token=token).json()
    assert len(listed["items"]) + len(rest["items"]) == 101


def _stored_strings(run: MakeRun) -> Iterator[str]:
    """Every key and value of every item in every table, and every S3 key: what was written."""
    dynamodb = run.boto3_client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                yield json.dumps(item)
    s3 = run.boto3_client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", []):
                yield obj["Key"]


def test_a_tenant_claim_with_a_trailing_newline_is_refused_and_nothing_is_written(world: World) -> None:
    marker = f"{CANARY}-newline"
    writes = [
        (
            "POST",
            "/crm/contacts",
            {"name": marker, "emails": [{"address": f"{marker.lower()}@probe.example"}]},
        ),
        ("POST", "/crm/companies", {"name": marker}),
        ("POST", "/uploads", {"filename": f"{marker}.txt", "content_type": "text/plain", "size": 3}),
        ("PUT", "/features", {"campaigns": True}),
        ("PUT", "/crm/settings", {"auto_create": "none", "own_domains": [f"{marker.lower()}.example"]}),
        (
            "POST",
            "/accounts",
            world.account_body(world.fresh_user("newline"), f"{marker.lower()}@example.com"),
        ),
    ]
    tenants = ("acme\n", "acme\r\n", "acme\x00", "acme/../probe")
    for tenant in tenants:
        token = world.run.token(tenant, "owner")
        for method, path, body in writes:
            # When a token whose tenant_id is not an identifier writes
            answer = world.call(method, path, body, token=token)
            # Then 403 no_tenant
            assert (answer.status, answer.code) == (403, "no_tenant"), (repr(tenant), path, answer.body)
    # And nothing of it reached a table or a bucket key
    spelled = [json.dumps(t)[1:-1] for t in tenants] + list(tenants) + [marker.lower()]
    leaked = [s for s in _stored_strings(world.run) if any(t in s.lower() for t in spelled)]
    assert leaked == []


def test_an_upload_larger_than_declared_is_refused(world: World) -> None:
    # Given a ticket for 10 bytes
    ticket = world.call("POST", "/uploads", {"filename": f"big-{CANARY}.bin", "size": 10})
    assert ticket.status == 201, ticket.body
    fields = ticket.json()["fields"]
    # Then its POST policy binds the declared size (S3 refuses a larger file: RESTObjectPOST)
    conditions = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    assert ["content-length-range", 1, 10] in conditions
    # When 30 MB are posted to it (moto, unlike S3, does not check the policy and stores them)
    posted = requests.post(
        ticket.json()["url"], data=fields, files={"file": ("big.bin", b"a" * (30 * 1024 * 1024))}, timeout=300
    )
    # Then either S3 refused it, or the send refuses it before reading it
    answer = world.call(
        "POST",
        "/emails/send",
        {
            "account_id": world.account_id,
            "to": [{"address": f"to-{CANARY.lower()}@customer.example"}],
            "text": "x",
            "attachments": [{"upload_id": ticket.json()["upload_id"], "filename": "big.bin"}],
        },
    )
    assert posted.status_code >= 400 or (answer.status, answer.code) == (400, "attachment_too_large"), (
        answer.body
    )


# Body routes a viewer may call: they read, and store nothing.
OPEN_TO_VIEWERS = {
    "POST /automations/evaluate",  # JSON-Logic against the caller's data: a preview
    "PUT /notifications/preferences",  # the caller's own notification preferences
    # The assist panel's reads (api/ai_assist.py READ: the ai flag, no role): suggestions computed
    # from what the tenant holds, nothing stored; apply (WRITE) acts and needs member
    "POST /ai/generate-reply",
    "POST /ai/assist/summarize",
    "POST /ai/assist/draft_email",
    "POST /ai/assist/nba",
    "POST /templates/{template_id}/preview",  # renders a template; stores nothing (no role)
}


def test_a_viewer_is_refused_before_the_body_is_looked_at(world: World) -> None:
    viewer = world.run.token(TENANT, "viewer")
    invalid = {
        "wrong_types": json.dumps({"name": 123, "emails": "x", f"{CANARY}": [None]}).encode(),
        "not_json": f"{{{CANARY}".encode(),
        "too_deep": b"[" * 1000 + b"]" * 1000,
    }
    guarded = [
        route
        for route, op in world.doc.operations()
        if "requestBody" in op
        and world.doc.probed(route)
        and "role_required" in op["responses"].get("403", {}).get("x-error-codes", [])
    ]
    assert set(guarded) == set(world.doc.body_routes()) - OPEN_TO_VIEWERS
    for route in guarded:
        for label, raw in invalid.items():
            # When a viewer sends an invalid body
            answer = world.call(route.split(" ")[0], world.concrete(route), token=viewer, raw=raw)
            # Then 403 role_required: the role is checked before the body
            assert (answer.status, answer.code) == (403, "role_required"), (route, label, answer.body)


def test_answers_api_gateway_gives_itself_keep_its_documented_shape(world: World) -> None:
    expired = world.run.issuer.token(tenant=TENANT, role="owner", ttl=-60)
    foreign = world.token[:-8] + "AAAAAAAA"
    # When a protected route is called without a usable token: API Gateway's 401
    for token in (None, "not-a-jwt", expired, foreign):
        answer = world.run.request("GET", "/me", token)
        assert (answer.status, answer.json()) == (401, {"message": "Unauthorized"})
    # When no route matches: API Gateway's 404
    answer = world.call("GET", f"/no-such-route/{CANARY}")
    assert (answer.status, answer.json()) == (404, {"message": "Not Found"})
    # When the body is over 10 MB: API Gateway's 413
    for route in ("POST /crm/contacts", "POST /ai/categorize-email", "POST /ai/extract-lead"):
        answer = world.call("POST", route.split(" ")[1], raw=b"a" * (10 * 1024 * 1024 + 1))
        assert (answer.status, answer.json()) == (413, {"message": "Request Entity Too Large"}), route
    # And what our code answers has our shape
    answer = world.call("GET", "/emails/em_00000000000000000000000000")
    assert (answer.status, answer.code) == (404, "not_found")


def test_read_routes_with_values_in_the_path_and_query_answer_without_a_5xx(world: World) -> None:
    # When values reach the path and the query string (they must not reach a log line either)
    answers = {
        "by_email": world.call("GET", f"/crm/contacts/by-email/carol-{CANARY.lower()}@customer.example"),
        "search": world.call("GET", f"/emails?q={CANARY}+renewal"),
        "from": world.call("GET", f"/emails?from=carol-{CANARY.lower()}@customer.example"),
        "threads": world.call("GET", f"/threads?q={CANARY}"),
        "contacts": world.call("GET", f"/crm/contacts?q={CANARY}"),
        "bad_folder": world.call("GET", f"/emails?account_id={world.account_id}&folder={CANARY}%0D%0A"),
        "bad_email_id": world.call("GET", f"/emails/{CANARY}%0A"),
    }
    # Then
    assert {k: a.status for k, a in answers.items() if not well_formed(a)} == {}
    assert answers["by_email"].status == 200
    assert answers["search"].status == 200
    found = {e["subject"] for e in answers["search"].json()["items"]}
    assert {f"Renewal {CANARY}", f"Re: Renewal {CANARY}"} <= found


CHANGING_BY_THEMSELVES: dict[str, frozenset[str] | None] = {
    "GET /accounts/{account_id}/status": None,  # the sync's own timestamps move with every poll
    "GET /emails/{email_id}/raw": None,  # a presigned URL, signed anew each call
    "GET /emails/{email_id}/attachments/{attachment_id}": None,
    "GET /ai/categorize/backfill/{job_id}": None,  # the job's progress
    "GET /drafts/{draft_id}": frozenset({"synced"}),  # set once the mailbox's Drafts has it
    # the contact syncs the probes started run on their own (runs logged, the sync's timestamps)
    "GET /crm/integrations/{integration_id}/logs": None,
    "GET /crm/integrations/{integration_id}/status": None,
    "GET /crm/integrations/{integration_id}": frozenset({"updated_at"}),
}
"""Reads whose body changes by itself between two calls: compared without those fields (None: by
status only)."""


def another_tenant_cannot_reach_our_ids(world: World, methods: frozenset[str]) -> list[Any]:
    """Issue 20 point 3: every probed route of `methods` with ids in its path, called by another
    tenant's owner with this world's ids (with a valid body, so a missing check cannot hide behind
    a 422): what is wrong, as (route, status, code). Right is our 404 with a code, or a 400/422 with
    a code when the body names something of ours first; never a 2xx, never a 409 that says ours
    exists. Then every GET of ours still answers as before the probe: nothing was changed or deleted."""
    other = world.run.token(f"other-{CANARY.lower()}", "owner")
    flags = world.call("GET", "/features").json()["flags"]
    assert world.call("PUT", "/features", flags, token=other).status == 200  # no flag hides a route
    assert world.call("PUT", "/settings/rate-limits", PROBE_RATE_LIMITS, token=other).status == 200
    routes = [
        route
        for route, _ in world.doc.operations()
        if world.doc.probed(route)
        and route.split(" ", 1)[0] in methods
        and "{" in route
        and "{token}" not in route
        and "{provider}" not in route
    ]
    reads = [
        r for r, _ in world.doc.operations() if world.doc.probed(r) and r.startswith("GET ") and "{" in r
    ]
    reads = [r for r in reads if "{token}" not in r and "{provider}" not in r]
    bodies = world.base_bodies()

    def path(route: str) -> str:
        """The route with our ids; those no other probe needs are read from our own listings."""
        if "{attachment_id}" in route:
            email_id = world.emails["clean"]  # the seed with an attachment
            attachment = world.call("GET", f"/emails/{email_id}").json()["attachments"][0]["id"]
            route = route.replace("{email_id}", email_id).replace("{attachment_id}", attachment)
        if "{link_id}" in route:
            links = world.call("GET", world.concrete("GET /emails/{email_id}/links")).json()  # a list
            route = route.replace("{link_id}", links[0]["link_id"])
        if "{notification_id}" in route:
            ours = world.call("GET", "/notifications").json()["items"]
            route = route.replace(
                "{notification_id}", ours[0]["notification_id"] if ours else "nt_" + "0" * 26
            )
        return world.concrete(route)

    def seen(route: str) -> tuple[int, Any]:
        answer = world.call("GET", path(route))
        if answer.status != 200 or (
            route in CHANGING_BY_THEMSELVES and CHANGING_BY_THEMSELVES[route] is None
        ):
            return answer.status, None
        body = answer.json()
        moving = CHANGING_BY_THEMSELVES.get(route) or frozenset()
        return answer.status, {k: v for k, v in body.items() if k not in moving} if moving else body

    def probe(route: str) -> Callable[[], Answer]:
        method, body = route.split(" ", 1)[0], (bodies[route][0]() if route in bodies else None)
        headers, where = world.headers(route), path(route)
        return lambda: world.call(method, where, body, token=other, headers=headers)

    before = [seen(r) for r in reads]

    answers = run_all([probe(route) for route in routes])
    wrong: list[Any] = [
        (route, a.status, a.code)
        for route, a in zip(routes, answers, strict=True)
        if not (a.code and (a.status == 404 or a.status in (400, 422)))
    ]
    after = [seen(r) for r in reads]
    wrong += [
        ("changed", r, b[0], a[0], sorted(k for k in {**b[1], **a[1]} if b[1].get(k) != a[1].get(k)))
        if isinstance(a[1], dict) and isinstance(b[1], dict)
        else ("changed", r, b[0], a[0])
        for r, b, a in zip(reads, before, after, strict=True)
        if a != b
    ]
    assert routes, "no route probed"
    return wrong


def test_another_tenant_replaying_our_ids_on_every_route_reaches_nothing(world: World) -> None:
    # When another tenant's owner calls every route with our ids in its path, any method
    wrong = another_tenant_cannot_reach_our_ids(world, frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}))
    # Then each is refused with a code and nothing of ours changed
    assert wrong == [], "\n".join(map(str, wrong))


def test_200_concurrent_requests_through_make_run_see_no_reset_connection(world: World) -> None:
    # Given 50 client threads (a bounded client) firing 200 requests at once on loopback
    def one(i: int) -> Any:
        try:
            path, token = ("/health", None) if i % 2 else ("/emails?limit=5", world.token)
            return world.run.request("GET", path, token, timeout=120).status
        except OSError as exc:  # a reset, refused or dropped connection
            return repr(exc)

    # When
    with ThreadPoolExecutor(max_workers=50) as clients:
        outcomes = list(clients.map(one, range(200)))
    # Then every one got its answer
    assert [o for o in outcomes if o != 200] == []


def test_make_run_stops_within_seconds_while_its_functions_are_busy(world: World) -> None:
    assert world.silent is not None
    silent = world.silent
    connected_before = len(silent.connections)
    outcomes: list[Any] = []

    def stuck(i: int) -> None:
        body = world.account_body(
            world.fresh_user(f"stuck{i}"), f"stuck{i}-{CANARY.lower()}@example.com", smtp=False
        )
        body["imap"]["port"] = silent.port
        try:
            outcomes.append(world.call("POST", "/accounts", body, timeout=60).status)
        except OSError as exc:
            outcomes.append(exc)

    # Given every api sandbox busy on a 20 s login to a silent server, and more requests waiting
    clients = [threading.Thread(target=stuck, args=(i,), daemon=True) for i in range(6)]
    for client in clients:
        client.start()
    wait_for("four logins in flight", lambda: len(silent.connections) - connected_before >= 4, timeout=60)
    # When make run is stopped with Ctrl-C
    seconds = world.run.stop()
    # Then it exits on its own, well before the logins would have ended
    assert world.run.process.returncode is not None
    assert seconds < 15, seconds
    # And every client got an answer or a closed connection; none hangs
    for client in clients:
        client.join(timeout=30)
    assert [c for c in clients if c.is_alive()] == []


def test_no_line_make_run_printed_holds_a_value_that_was_sent(world: World) -> None:
    # Given everything the runner and its functions printed while this module ran
    world.run.stop()
    output = world.run.output()
    assert "mailbridge is running on" in output
    # Then no value sent is in it: no marked value, address, search word, injected header or input_value
    needles = (CANARY.lower(), "evil.example", "sgkncmjjyzog", "input_value", "mallory", "bcc:")
    leaked = [line[:300] for line in output.splitlines() if any(n in line.lower() for n in needles)]
    assert leaked == []


def test_the_deployed_configuration_refuses_mail_hosts_on_loopback_at_connect_time(
    tmp_path_factory: pytest.TempPathFactory, dovecot_server: DovecotServer
) -> None:
    # Given make run with the deployed stack's AllowPrivateMailHosts=false, and a real server on loopback
    run = start_make_run(tmp_path_factory.mktemp("make-run-deployed"), {"AllowPrivateMailHosts": "false"})
    try:
        token = run.token(TENANT, "owner")
        user = dovecot_server.add_user(f"{CANARY.lower()}-deployed", f"{CANARY}-pw-deployed")
        hosts = ("127.0.0.1", "localhost", "127.1", "0.0.0.0", "::1", "localhost.")
        answers = {}
        for host in hosts:
            body = {
                "provider": "imap",
                "address": f"{CANARY.lower()}-deployed@example.com",
                "imap": {
                    "host": host,
                    "port": dovecot_server.imaps_port,
                    "security": "ssl",
                    "username": user.name,
                    "password": user.password,
                },
            }
            # When a mailbox on a loopback name or address is connected
            answers[host] = run.request("POST", "/accounts", token, body)
        # Then each is refused with a code: 400 host_not_allowed for what resolves to loopback
        outcomes = {host: (a.status, a.code) for host, a in answers.items()}
        assert all(400 <= status < 500 and code for status, code in outcomes.values()), outcomes
        assert outcomes["127.0.0.1"] == (400, "host_not_allowed")
        assert outcomes["localhost"] == (400, "host_not_allowed")
        # And nothing was connected
        assert run.request("GET", "/accounts", token).json()["items"] == []
    finally:
        run.stop()
    assert CANARY.lower() not in run.output().lower()
