"""Which routes the audit log covers (issue 19 point 4), from the routes and document themselves:
a route that reads message bodies or downloads (raw message, attachment, export) must declare
`audit_read`, every write is audited, and an entry keeps only id-shaped path ids."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mailbridge.api.app import _configure_openapi, _document_routes, create_app
from mailbridge.api.auditing import AUDIT_EXTENSION, audit_kind, audit_read, resource_ids
from mailbridge.audit.agents import agent_family
from mailbridge.config import Settings, TableNames

# Properties that carry a message's (or a draft's) body in a response.
BODY_FIELDS = frozenset({"text_body", "html_body", "reply_text", "content_base64"})
# Paths that hand out a download of mail content or an export.
DOWNLOAD_PATH = re.compile(r"/(raw|attachments/\{[^}]+\}|export[^/]*)$")
# Every audited read, bodies, downloads and credential-bearing data (a mailbox's connection
# details, the calendar feed URL that is itself a credential): a change here is a decision.
EXPECTED_READS = {
    "/accounts/{account_id}",
    "/calendar/export.ics",
    "/calendar/feed",
    "/drafts/{draft_id}",
    "/emails/{email_id}",
    "/emails/{email_id}/attachments/{attachment_id}",
    "/emails/{email_id}/raw",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(
        Settings.model_construct(docs_enabled=True, tables=TableNames.model_construct()), load_all=True
    )
    app.load_documented_elsewhere()
    _document_routes(app)
    _configure_openapi(app)
    return dict(json.loads(app.get_openapi_json_schema()))


def _properties(schema: Any, components: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name reachable from `schema` (through $ref, items, unions)."""
    if not isinstance(schema, dict):
        return set()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return set()
        seen.add(name)
        return _properties(components.get(name), components, seen)
    found = set(schema.get("properties") or {})
    for value in (schema.get("properties") or {}).values():
        found |= _properties(value, components, seen)
    for key in ("items", "additionalProperties"):
        found |= _properties(schema.get(key), components, seen)
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key) or []:
            found |= _properties(sub, components, seen)
    return found


def _gets(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, item["get"]) for path, item in document["paths"].items() if "get" in item]


def test_every_route_that_reads_bodies_or_downloads_mail_declares_audit_read(
    document: dict[str, Any],
) -> None:
    # Given every GET of the document with the properties of its success answer
    components = document["components"]["schemas"]
    sensitive = set()
    for path, operation in _gets(document):
        success = operation["responses"].get("200", {})
        schema = (success.get("content", {}).get("application/json") or {}).get("schema")
        if _properties(schema, components, set()) & BODY_FIELDS or DOWNLOAD_PATH.search(path):
            sensitive.add(path)
    # When their audit declarations are read
    unmarked = sorted(p for p, op in _gets(document) if p in sensitive and op.get(AUDIT_EXTENSION) != "read")
    # Then each is an audited read
    assert len(sensitive) >= 5
    assert unmarked == []


def test_the_audited_reads_are_the_decided_ones(document: dict[str, Any]) -> None:
    # Given the document
    # When the GETs marked as audited reads are listed
    reads = {path for path, operation in _gets(document) if operation.get(AUDIT_EXTENSION) == "read"}
    # Then they are exactly the bodies, downloads and credential-bearing reads decided above
    assert reads == EXPECTED_READS


def test_every_write_is_audited_but_provider_pushes(document: dict[str, Any]) -> None:
    # Given every operation of the document (the OAuth and webhooks functions' included)
    operations = [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    # When their declarations are read
    declared = {(m, p): op.get(AUDIT_EXTENSION) for m, p, op in operations}
    writes = {key for key, kind in declared.items() if kind == "write"}
    not_writes = sorted(
        key for key, kind in declared.items() if key[0] not in {"GET", "HEAD"} and kind != "write"
    )
    # Then every POST/PUT/PATCH/DELETE is a write but the providers' pushes (declared not audited),
    # and the only GET writes are the public RSVP link and the OAuth callback (it connects a
    # mailbox or a CRM integration); tracking hits are not audited
    assert not_writes == [
        ("POST", "/webhooks/gmail"),
        ("POST", "/webhooks/graph"),
        ("POST", "/webhooks/hubspot"),
        ("POST", "/webhooks/salesforce"),
    ]
    assert {(m, p) for m, p in writes if m == "GET"} == {
        ("GET", "/calendar/rsvp/{token}"),
        ("GET", "/oauth/{provider}/callback"),
    }
    assert {kind for (m, p), kind in declared.items() if p.startswith("/t/")} == {"none"}


def test_a_route_declares_its_audit_once() -> None:
    # Given a route with two declarations
    # When its kind is asked for
    # Then it is refused
    with pytest.raises(ValueError, match="2 times"):
        audit_kind("GET", [audit_read("a"), audit_read("b")])


def test_an_entry_keeps_only_id_shaped_path_ids() -> None:
    # Given path parameters with an id, a token, an address in an id's place and free text
    parameters = {
        "email_id": "em_0123456789abcdef",
        "token": "t0k3n-secret",
        "contact_id": "ada@example.com",
        "deal_id": "a b c",
        "version": "3",
    }
    # When the entry's resource ids are taken
    kept = resource_ids(parameters)
    # Then only ids are kept; a value that is not an id's shape is replaced, a token is dropped
    assert kept == {"email_id": "em_0123456789abcdef", "contact_id": "-", "deal_id": "-", "version": "3"}


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        (None, "none"),
        ("", "none"),
        (
            "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML) Chrome/130.0 Safari/537.36 Edg/130.0",
            "edge",
        ),
        (
            "Mozilla/5.0 (Macintosh) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
            "chrome",
        ),
        (
            "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "safari",
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", "firefox"),
        ("curl/8.5.0", "curl"),
        ("python-httpx/0.28.1", "python-httpx"),
        ("Boto3/1.44.5 md/Botocore#1.44.5", "aws-sdk"),
        ("SomethingElse", "other"),
    ],
)
def test_the_user_agent_is_reduced_to_its_family(agent: str | None, family: str) -> None:
    # Given a User-Agent header
    # When its family is taken
    # Then it is the browser or client family, never the string
    assert agent_family(agent) == family
