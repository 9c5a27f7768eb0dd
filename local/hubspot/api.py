"""api.hubapi.com's HTTP side: OAuth token endpoints and the CRM routes (rules live in crm.py,
oauth.py and limits.py). Every CRM call needs a live bearer token holding a scope the route needs,
counts against the rate limits, and answers with the X-HubSpot-RateLimit-* headers (search
answers carry none)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from local.double_server import Call, Response, Route, route
from local.hubspot.crm import (
    MAX_BATCH,
    MAX_PAGE,
    TYPES,
    CrmObject,
    HubList,
    ObjectType,
    object_type,
    stamp,
)
from local.hubspot.errors import ApiError, expired, missing_scopes, not_found, unauthenticated, validation
from local.hubspot.oauth import Access

if TYPE_CHECKING:
    from local.hubspot.double import HubSpotDouble

SOURCE = "INTEGRATION"


class HubSpotApi:
    def __init__(self, double: HubSpotDouble) -> None:
        self.double = double
        self.crm = double.crm

    def routes(self) -> list[Route]:
        objects = "/crm/v3/objects/{objectType}"
        read, write = "read", "write"
        g = self.guarded
        return [
            route("GET", "/oauth/authorize", self.authorize),
            route("POST", "/oauth/v1/token", self.token),
            route("POST", "/oauth/v3/token", self.token),
            route("GET", "/oauth/v1/access-tokens/{token}", self.access_info),
            route("GET", "/oauth/v1/refresh-tokens/{token}", self.refresh_info),
            route("DELETE", "/oauth/v1/refresh-tokens/{token}", self.revoke),
            route("GET", objects, g(self.list_objects, read)),
            route("POST", objects, g(self.create, write)),
            route("POST", objects + "/search", g(self.search, read, search=True)),
            route("POST", objects + "/batch/read", g(self.batch_read, read)),
            route("POST", objects + "/batch/create", g(self.batch_create, write)),
            route("POST", objects + "/batch/update", g(self.batch_update, write)),
            route("POST", objects + "/batch/archive", g(self.batch_archive, write)),
            route("GET", objects + "/{objectId}", g(self.read, read)),
            route("PATCH", objects + "/{objectId}", g(self.update, write)),
            route("DELETE", objects + "/{objectId}", g(self.archive, write)),
            route("GET", "/crm/v3/properties/{objectType}", g(self.properties, "schema")),
            route("POST", "/crm/v3/properties/{objectType}", g(self.create_property, "schema")),
            route("GET", "/crm/v3/properties/{objectType}/{name}", g(self.property, "schema")),
            route(
                "PUT",
                "/crm/v4/objects/{objectType}/{objectId}/associations/default/{toObjectType}/{toObjectId}",
                g(self.associate_default, write),
            ),
            route(
                "PUT",
                "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}",
                g(self.associate_labelled, write),
            ),
            route(
                "DELETE",
                "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}",
                g(self.dissociate, write),
            ),
            route(
                "GET",
                "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}",
                g(self.associations, read),
            ),
            route("POST", "/crm/v3/lists", g(self.create_list, "lists.write")),
            route("POST", "/crm/v3/lists/", g(self.create_list, "lists.write")),
            route("GET", "/crm/v3/lists/{listId}", g(self.get_list, "lists.read")),
            route("DELETE", "/crm/v3/lists/{listId}", g(self.delete_list, "lists.write")),
            route("PUT", "/crm/v3/lists/{listId}/update-list-name", g(self.rename_list, "lists.write")),
            route("PUT", "/crm/v3/lists/{listId}/memberships/add", g(self.add_members, "lists.write")),
            route("PUT", "/crm/v3/lists/{listId}/memberships/remove", g(self.remove_members, "lists.write")),
            route("GET", "/crm/v3/lists/{listId}/memberships", g(self.members, "lists.read")),
        ]

    # ------------------------------------------------------------------ plumbing

    def guarded(
        self, handler: Callable[[Call, Access], Response], need: str, search: bool = False
    ) -> Callable[[Call], Response]:
        def run(call: Call) -> Response:
            with self.double.lock:
                now = self.double.now()
                access = self.double.oauth.access(call.bearer())
                if access is None:
                    raise unauthenticated()
                if now >= access.expires:
                    raise expired(max(0, math.floor((now - access.expires).total_seconds() / 60)))
                self._scope(call, access, need)
                headers = self.double.limits.charge(now, search=search)
                try:
                    response = handler(call, access)
                except ApiError as error:
                    response = error.response()
                response.headers.update(headers)
                return response

        return run

    def _scope(self, call: Call, access: Access, need: str) -> None:
        if need.startswith("lists."):
            wanted = [f"crm.{need}"]
        else:
            kind = object_type(call.params.get("objectType", "contacts"))
            base = "crm.schemas" if need == "schema" else "crm.objects"
            if kind.name == "emails":
                wanted = (
                    ["sales-email-read", "crm.objects.contacts.write"]
                    if need == "read"
                    else ["crm.objects.contacts.write"]
                )
            else:
                wanted = [f"{base}.{kind.name}.{'read' if need in ('read', 'schema') else 'write'}"]
                if need in ("read", "schema"):
                    wanted.append(f"{base}.{kind.name}.write")
        if not any(scope in access.scopes for scope in wanted):
            raise missing_scopes(wanted)

    def _body(self, call: Call) -> Any:
        try:
            return call.json()
        except (UnicodeDecodeError, ValueError):
            raise validation("Invalid input JSON on line 1, column 1: Unexpected character") from None

    def _kind(self, call: Call) -> ObjectType:
        return object_type(call.params["objectType"])

    def _limit(self, call: Call, default: int, maximum: int) -> int:
        text = call.one("limit")
        if text is None:
            return default
        if not text.isdigit() or not 0 < int(text) <= maximum:
            raise validation(f"limit must be between 1 and {maximum}")
        return int(text)

    # ------------------------------------------------------------------ OAuth

    def authorize(self, call: Call) -> Response:
        with self.double.lock:
            location = self.double.oauth.authorize({k: v[-1] for k, v in call.query.items()})
        return Response(302, b"", {"Location": location})

    def token(self, call: Call) -> Response:
        with self.double.lock:
            return Response.json(200, self.double.oauth.token(call.form()))

    def access_info(self, call: Call) -> Response:
        with self.double.lock:
            info = self.double.oauth.access_info(call.params["token"])
        if info is None:
            raise not_found("Token not found")
        return Response.json(200, info)

    def refresh_info(self, call: Call) -> Response:
        with self.double.lock:
            info = self.double.oauth.refresh_info(call.params["token"])
        if info is None:
            raise not_found("Token not found")
        return Response.json(200, info)

    def revoke(self, call: Call) -> Response:
        with self.double.lock:
            revoked = self.double.oauth.revoke_refresh(call.params["token"])
        if not revoked:
            raise not_found("Token not found")
        return Response.empty(204)

    # ------------------------------------------------------------------ objects

    def list_objects(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        limit = self._limit(call, 10, MAX_PAGE)
        rows, following = self.crm.page(kind, call.one("after"), limit, call.one("archived") == "true")
        body: dict[str, Any] = {
            "results": [self.crm.json(o, call.many("properties"), call.many("associations")) for o in rows]
        }
        if following is not None:
            link = f"{call.origin}/crm/v3/objects/{call.params['objectType']}?limit={limit}&after={following}"
            body["paging"] = {"next": {"after": following, "link": link}}
        return Response.json(200, body)

    def read(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        obj = self.crm.get(
            kind, call.params["objectId"], call.one("idProperty"), call.one("archived") == "true"
        )
        return Response.json(200, self.crm.json(obj, call.many("properties"), call.many("associations")))

    def create(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        values, links = self.crm.validate_create(kind, self._body(call))
        obj = self.crm.create(kind, values, links, SOURCE)
        return Response.json(201, self.crm.json(obj, sorted(obj.properties)))

    def update(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        obj = self.crm.get(kind, call.params["objectId"], call.one("idProperty"))
        self.crm.update(kind, obj, self._body(call), SOURCE)
        return Response.json(200, self.crm.json(obj, sorted(obj.properties)))

    def archive(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        obj = (
            self.crm.objects[kind.name].get(int(call.params["objectId"]))
            if call.params["objectId"].isdigit()
            else None
        )
        if obj is not None and obj.archived_at is None:
            self.crm.archive(kind, obj, SOURCE)
        return Response.empty(204)

    def search(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        body = self._body(call) or {}
        rows, total, following = self.crm.search(kind, body)
        wanted = body.get("properties") if isinstance(body.get("properties"), list) else None
        out: dict[str, Any] = {"total": total, "results": [self.crm.json(o, wanted) for o in rows]}
        if following >= 0:
            out["paging"] = {"next": {"after": str(following)}}
        return Response.json(200, out)

    # ------------------------------------------------------------------ batch

    def _inputs(self, call: Call) -> tuple[dict[str, Any], list[Any]]:
        body = self._body(call)
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise validation("Invalid input JSON: inputs is required")
        if len(body["inputs"]) > MAX_BATCH:
            raise validation(
                f"Batch input limit exceeded: {len(body['inputs'])} inputs, the maximum is {MAX_BATCH}"
            )
        return body, body["inputs"]

    def _batch(
        self, status: int, results: list[dict[str, Any]], started: datetime, errors: list[dict[str, Any]]
    ) -> Response:
        if self.double.shuffle_batch_results:  # HubSpot promises no order for batch results
            self.double.rng.shuffle(results)
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": stamp(started),
            "completedAt": stamp(self.double.now()),
        }
        if errors:
            body |= {"numErrors": len(errors), "errors": errors}
            status = 207
        return Response.json(status, body)

    def _missing(self, kind: ObjectType, ids: list[str], verb: str) -> dict[str, Any]:
        return {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": f"Could not {verb} some {kind.singular.upper()} objects, they may be deleted or not "
            "exist. "
            "Check that ids are valid.",
            "context": {"ids": ids},
        }

    def batch_read(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        started = self.double.now()
        body, inputs = self._inputs(call)
        wanted = body.get("properties") if isinstance(body.get("properties"), list) else None
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", "")) if isinstance(item, dict) else ""
            try:
                obj = self.crm.get(kind, key, body.get("idProperty"))
            except ApiError:
                missing.append(key)
                continue
            results.append(self.crm.json(obj, wanted))
        errors = [self._missing(kind, missing, "get")] if missing else []
        return self._batch(200, results, started, errors)

    def batch_create(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        started = self.double.now()
        _body, inputs = self._inputs(call)
        prepared = [self.crm.validate_create(kind, item) for item in inputs]  # all or nothing [R]
        emails = [
            v.get("email", "").lower() for v, _ in prepared if kind.name == "contacts" and v.get("email")
        ]
        if len(emails) != len(set(emails)):
            raise validation("Duplicate email addresses in the batch input")
        created = [self.crm.create(kind, values, links, SOURCE) for values, links in prepared]
        return self._batch(
            201,
            [
                _traced(self.crm.json(o, sorted(o.properties)), i)
                for o, i in zip(created, inputs, strict=True)
            ],
            started,
            [],
        )

    def batch_update(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        started = self.double.now()
        body, inputs = self._inputs(call)
        plans: list[tuple[CrmObject, dict[str, str], Any]] = []
        missing: list[str] = []
        for item in inputs:
            if not isinstance(item, dict):
                raise validation("Each input needs an id and properties")
            try:
                obj = self.crm.get(kind, str(item.get("id", "")), body.get("idProperty"))
            except ApiError:
                missing.append(str(item.get("id", "")))
                continue
            values = self.crm._clean(kind, item.get("properties") or {}, creating=False)
            self.crm._unique(kind, values, obj.id)
            plans.append((obj, values, item))
        done = [(self.crm.apply(kind, obj, values, SOURCE), item) for obj, values, item in plans]
        errors = [self._missing(kind, missing, "update")] if missing else []
        return self._batch(
            200, [_traced(self.crm.json(o, sorted(o.properties)), i) for o, i in done], started, errors
        )

    def batch_archive(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        _body, inputs = self._inputs(call)
        for item in inputs:
            key = str(item.get("id", "")) if isinstance(item, dict) else ""
            obj = self.crm.objects[kind.name].get(int(key)) if key.isdigit() else None
            if obj is not None and obj.archived_at is None:
                self.crm.archive(kind, obj, SOURCE)
        return Response.empty(204)

    # ------------------------------------------------------------------ properties

    def properties(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        return Response.json(200, {"results": [p.json() for p in self.crm.properties[kind.name].values()]})

    def property(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        prop = self.crm.properties[kind.name].get(call.params["name"])
        if prop is None:
            raise not_found(f"Unable to find property {call.params['name']}")
        return Response.json(200, prop.json())

    def create_property(self, call: Call, _access: Access) -> Response:
        kind = self._kind(call)
        body = self._body(call)
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise validation("name, label, type, fieldType and groupName are required")
        options = [str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict)]
        prop = self.crm.add_property(
            kind.name, str(body["name"]), str(body["label"]), str(body.get("type") or "string"),
            str(body.get("fieldType") or "text"), options, body.get("groupName"),
            bool(body.get("hasUniqueValue")),
        )  # fmt: skip
        return Response.json(201, prop.json())

    # ------------------------------------------------------------------ associations v4

    def _ids(self, call: Call) -> tuple[ObjectType, int, ObjectType, int]:
        kind, other = self._kind(call), object_type(call.params["toObjectType"])
        if not call.params["objectId"].isdigit() or not call.params["toObjectId"].isdigit():
            raise validation("Object ids are numbers")
        return kind, int(call.params["objectId"]), other, int(call.params["toObjectId"])

    def associate_default(self, call: Call, _access: Access) -> Response:
        kind, object_id, other, other_id = self._ids(call)
        type_id = self.crm.associate(kind.name, object_id, other.name, other_id)
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
        result = {"from": {"id": str(object_id)}, "to": {"id": str(other_id)}, "associationSpec": spec}
        now = stamp(self.double.now())
        return Response.json(
            200, {"status": "COMPLETE", "results": [result], "startedAt": now, "completedAt": now}
        )

    def associate_labelled(self, call: Call, _access: Access) -> Response:
        kind, object_id, other, other_id = self._ids(call)
        body = self._body(call)
        if not isinstance(body, list) or not body:
            raise validation("The body is an array of {associationCategory, associationTypeId}")
        for item in body:
            if not isinstance(item, dict) or item.get("associationCategory") != "HUBSPOT_DEFINED":
                raise validation("Only HUBSPOT_DEFINED association types are known to this portal")
            self.crm.associate(
                kind.name, object_id, other.name, other_id, int(item.get("associationTypeId", 0))
            )
        return Response.json(
            201,
            {
                "fromObjectTypeId": kind.type_id,
                "fromObjectId": object_id,
                "toObjectTypeId": other.type_id,
                "toObjectId": other_id,
                "labels": [],
            },
        )

    def dissociate(self, call: Call, _access: Access) -> Response:
        kind, object_id, other, other_id = self._ids(call)
        self.crm.dissociate(kind.name, object_id, other.name, other_id)
        return Response.empty(204)

    def associations(self, call: Call, _access: Access) -> Response:
        kind, other = self._kind(call), object_type(call.params["toObjectType"])
        if not call.params["objectId"].isdigit():
            raise validation("Object ids are numbers")
        pairs = self.crm.associated(kind.name, int(call.params["objectId"]), other.name)
        return Response.json(
            200,
            {
                "results": [
                    {
                        "toObjectId": to_id,
                        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": None}],
                    }
                    for to_id, t in pairs
                ]
            },
        )

    # ------------------------------------------------------------------ lists v3

    def _list(self, call: Call) -> HubList:
        key = call.params["listId"]
        hub_list = self.crm.lists.get(int(key)) if key.isdigit() else None
        if hub_list is None:
            raise not_found(f"List {key} does not exist.")
        return hub_list

    def create_list(self, call: Call, _access: Access) -> Response:
        body = self._body(call)
        if not isinstance(body, dict) or not body.get("name") or not body.get("objectTypeId"):
            raise validation("name, objectTypeId and processingType are required")
        if str(body.get("processingType")) != "MANUAL":
            raise validation("Only MANUAL lists can be created without filter definitions in this portal")
        kind = object_type(str(body["objectTypeId"]))
        if any(existing.name == body["name"] for existing in self.crm.lists.values()):
            raise validation(f"A list named {body['name']} already exists.")
        now = self.double.now()
        hub_list = HubList(self.double.next_id(), str(body["name"]), kind.type_id, "MANUAL", now, now)
        self.crm.lists[hub_list.id] = hub_list
        return Response.json(200, {"list": hub_list.json()})

    def get_list(self, call: Call, _access: Access) -> Response:
        return Response.json(200, {"list": self._list(call).json()})

    def rename_list(self, call: Call, _access: Access) -> Response:
        """`PUT /crm/v3/lists/{listId}/update-list-name?listName=` [D: Lists "Update list name":
        the name must be unique among the portal's lists; answers `{"updatedList": ...}`]."""
        hub_list = self._list(call)
        name = (call.one("listName") or "").strip()
        if not name:
            raise validation("listName is required")
        if any(other.name == name and other.id != hub_list.id for other in self.crm.lists.values()):
            raise validation(f"A list named {name} already exists.")
        if name != hub_list.name:
            hub_list.name = name
            hub_list.version += 1
            hub_list.updated = self.double.now()
        return Response.json(200, {"updatedList": hub_list.json()})

    def delete_list(self, call: Call, _access: Access) -> Response:
        del self.crm.lists[self._list(call).id]
        return Response.empty(204)

    def _record_ids(self, call: Call) -> list[str]:
        body = self._body(call)
        if not isinstance(body, list):
            raise validation("The body is an array of record ids")
        return [str(v) for v in body]

    def add_members(self, call: Call, _access: Access) -> Response:
        hub_list = self._list(call)
        kind = object_type(hub_list.object_type_id)
        added, missing = [], []
        for key in self._record_ids(call):
            obj = self.crm.objects[kind.name].get(int(key)) if key.isdigit() else None
            if obj is None or obj.archived_at is not None:
                missing.append(key)
            elif obj.id not in hub_list.members:
                hub_list.members[obj.id] = self.double.now()
                added.append(key)
        if added:
            hub_list.version += 1
            hub_list.updated = self.double.now()
        return Response.json(200, {"recordIdsAdded": added, "recordIdsMissing": missing})

    def remove_members(self, call: Call, _access: Access) -> Response:
        hub_list = self._list(call)
        removed, missing = [], []
        for key in self._record_ids(call):
            if key.isdigit() and int(key) in hub_list.members:
                del hub_list.members[int(key)]
                removed.append(key)
            else:
                missing.append(key)
        if removed:
            hub_list.version += 1
            hub_list.updated = self.double.now()
        return Response.json(200, {"recordIdsRemoved": removed, "recordIdsMissing": missing})

    def members(self, call: Call, _access: Access) -> Response:
        hub_list = self._list(call)
        limit = self._limit(call, 100, 250)
        after = call.one("after")
        start = int(after) if after and after.isdigit() else 0
        ids = sorted(i for i in hub_list.members if i >= start)
        body: dict[str, Any] = {
            "results": [
                {"recordId": str(i), "membershipTimestamp": stamp(hub_list.members[i])} for i in ids[:limit]
            ],
            "total": len(hub_list.members),
        }
        if len(ids) > limit:
            body["paging"] = {"next": {"after": str(ids[limit])}}
        return Response.json(200, body)


def _traced(result: dict[str, Any], item: Any) -> dict[str, Any]:
    """A batch result with the input's `objectWriteTraceId` echoed [D: batch create/update
    response schema lists `objectWriteTraceId` on each result]."""
    trace = item.get("objectWriteTraceId") if isinstance(item, dict) else None
    return result | {"objectWriteTraceId": str(trace)} if trace is not None else result


__all__ = ["TYPES", "HubSpotApi"]
