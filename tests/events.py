"""The one helper tests use to load sample events from events/ (optionally adjusted)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


@cache
def _read(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())  # type: ignore[no-any-return]


def load_event(
    name: str,
    *,
    tenant: str | None = None,
    role: str | None = None,
    sub: str | None = None,
    body: Any = None,
    claims: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A deep copy of events/<name>, with the JWT claims, body or query string replaced."""
    event = copy.deepcopy(_read(name))
    jwt = event.get("requestContext", {}).get("authorizer", {}).get("jwt")
    if jwt is not None:
        if claims is not None:
            jwt["claims"] = dict(claims)
        if tenant is not None:
            jwt["claims"]["custom:tenant_id"] = tenant
        if role is not None:
            jwt["claims"]["custom:role"] = role
        if sub is not None:
            jwt["claims"]["sub"] = sub
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if query is not None:
        event["queryStringParameters"] = dict(query)
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event
