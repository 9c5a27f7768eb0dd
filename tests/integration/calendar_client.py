"""A small client over the calendar's sample events (events/api/calendar-*.json) for the tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from tests.events import load_event

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT, OTHER = "acme", "globex"


def event_for(
    name: str,
    *,
    tenant: str = TENANT,
    role: str = "member",
    path: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: bytes | None = None,
    content_type: str | None = None,
    sub: str | None = None,
) -> dict[str, Any]:
    """events/api/calendar-{name}.json with the caller, path, query and body replaced."""
    event = load_event(f"api/calendar-{name}.json", tenant=tenant, role=role, body=body, sub=sub)
    if path:
        raw = event["routeKey"].split(" ", 1)[1]
        for key, value in path.items():
            raw = raw.replace("{" + key + "}", value)
        event["pathParameters"] = dict(path)
        event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    event.pop("queryStringParameters", None)
    event["rawQueryString"] = ""
    if query is not None:
        event["queryStringParameters"] = dict(query)
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if raw_body is not None:
        event["body"] = base64.b64encode(raw_body).decode()
        event["isBase64Encoded"] = True
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    return event


class Calendar:
    """Calls the api function; `call` asserts the status it expects and decodes JSON answers."""

    def __init__(self, invoke: Invoke, tenant: str = TENANT, role: str = "member") -> None:
        self.invoke, self.tenant, self.role = invoke, tenant, role

    def raw(self, name: str, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("tenant", self.tenant)
        kwargs.setdefault("role", self.role)
        return self.invoke(event_for(name, **kwargs))

    def call(self, name: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.raw(name, **kwargs)
        assert response["statusCode"] == status, response
        text = response.get("body") or ""
        return (
            json.loads(text) if text and "json" in response["headers"].get("Content-Type", "json") else text
        )

    def create(self, status: int = 201, **fields: Any) -> Any:
        return self.call("create-event", status, body=fields)

    def get(self, event_id: str, status: int = 200) -> Any:
        return self.call("get-event", status, path={"event_id": event_id})

    def put(self, event_id: str, status: int = 200, **fields: Any) -> Any:
        return self.call("put-event", status, path={"event_id": event_id}, body=fields)

    def delete(self, event_id: str, status: int = 200) -> Any:
        return self.call("delete-event", status, path={"event_id": event_id})

    def occurrences(self, start: str, end: str, status: int = 200, **query: str) -> Any:
        return self.call("list-occurrences", status, query={"from": start, "to": end, **query})

    def import_ics(self, data: bytes, status: int = 200, content_type: str = "text/calendar") -> Any:
        return self.call("import", status, raw_body=data, content_type=content_type)

    def export(self, status: int = 200, **query: str) -> Any:
        return self.call("export", status, query=query)


def berlin(value: str) -> dict[str, str]:
    return {"date_time": value, "time_zone": "Europe/Berlin"}
