"""Automations table: rules, their immutable versions, runs, the save-rate counter.

Keys (template.yaml `AutomationsTable` lists them too):

| item | pk | sk | notes |
|---|---|---|---|
| rule (latest) | `TENANT#{t}` | `RULE#{rule_id}` | `gsi1pk = TENANT#{t}#ON#{event}` while enabled |
| rule version | `TENANT#{t}` | `VER#{rule_id}#{version:08d}` | written once, never changed |
| run | `TENANT#{t}` | `RUN#{rule_id}#{run_id}` | `run_id` sorts by the event's time |
| run key | `TENANT#{t}` | `RUNKEY#{rule_id}#{digest}` | (rule, version, event) -> its `run_id` |
| archived event | `TENANT#{t}` | `EVENT#{type}#{occurred_at}#{event_id}` | `ttl` 90 days |
| save counter | `TENANT#{t}` | `RATE#automation_saves#{minute number}` | `ttl` (store/ratelimit.py) |
| webhook secret | `TENANT#{t}` | `SECRET#{name}` | `secrets`: active signing secrets, newest first |
| registered queue | `TENANT#{t}` | `QUEUE#{name}` | `queue_url` (`queue.enqueue`) |
| OpenAPI document | `TENANT#{t}` | `OPENAPI#{document_id}` | `doc`: its JSON text (`http.openapi`) |
| metric | `TENANT#{t}` | `METRIC#{yyyy-mm-dd}#{metric}` | `analytics.track`: `count`, `sum` of the day |

A rule's document (trigger, condition, actions; JSON that may hold floats) is kept as JSON text
in `doc`, so what was saved is what is read back, number for number. Only this module touches
the table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key

from mailbridge.automations.models import Rule, RuleVersion, Run
from mailbridge.errors import Conflict, NotFound
from mailbridge.store.base import DynamoRepository, Item, Write, is_condition_failure, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

INDEX = "gsi1"
ARCHIVE_SECONDS = 90 * 24 * 3600
_DOC_FIELDS = ("trigger", "logic", "conditions", "actions")


def rule_sk(rule_id: str) -> str:
    return f"RULE#{rule_id}"


def version_sk(rule_id: str, version: int) -> str:
    return f"VER#{rule_id}#{version:08d}"


def run_sk(rule_id: str, run_id: str) -> str:
    return f"RUN#{rule_id}#{run_id}"


def trigger_key(tenant_id: str, event_type: str) -> str:
    return f"{tenant_pk(tenant_id)}#ON#{event_type}"


def _doc(model: Rule | RuleVersion) -> str:
    data = model.model_dump(mode="json", include=set(_DOC_FIELDS))
    return json.dumps(data, separators=(",", ":"))


class AutomationStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # ------------------------------------------------------------------------- mapping
    def _rule_item(self, tenant_id: str, rule: Rule) -> Item:
        item: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": rule_sk(rule.rule_id),
            **rule.model_dump(mode="json", exclude=set(_DOC_FIELDS) | {"version"}),
            "doc": _doc(rule),
        }
        item = {k: v for k, v in item.items() if v is not None}
        event = getattr(rule.trigger, "event", None)
        if rule.enabled and rule.paused_reason is None and event is not None:
            item["gsi1pk"] = trigger_key(tenant_id, event)
            item["gsi1sk"] = rule.rule_id
        return item

    @staticmethod
    def _rule(item: Item) -> Rule:
        data = {k: v for k, v in item.items() if k not in ("pk", "sk", "gsi1pk", "gsi1sk", "doc")}
        data["version"] = int(item["version"])
        data["consecutive_failures"] = int(item.get("consecutive_failures", 0))
        return Rule.model_validate({**data, **json.loads(item["doc"])})

    def _version_item(self, tenant_id: str, version: RuleVersion) -> Item:
        item: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": version_sk(version.rule_id, version.version),
            **version.model_dump(mode="json", exclude=set(_DOC_FIELDS)),
            "doc": _doc(version),
        }
        return {k: v for k, v in item.items() if v is not None}

    @staticmethod
    def _version(item: Item) -> RuleVersion:
        data = {k: v for k, v in item.items() if k not in ("pk", "sk", "doc")}
        data["version"] = int(item["version"])
        return RuleVersion.model_validate({**data, **json.loads(item["doc"])})

    # ------------------------------------------------------------------------- rules
    def save_rule(self, tenant_id: str, rule: Rule, version: RuleVersion, *, expected: int | None) -> None:
        """Write the rule at `rule.version` and its version item in one transaction.

        `expected` None: a new rule (Conflict `already_exists`); else the version the caller
        read (Conflict `version_conflict` when someone saved in between)."""
        head = {**self._rule_item(tenant_id, rule), "version": rule.version}
        if expected is None:
            put: dict[str, Any] = {"Item": head, "ConditionExpression": "attribute_not_exists(pk)"}
            error = Conflict("the rule already exists", code="already_exists")
        else:
            put = {
                "Item": head,
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": expected},
            }
            error = Conflict("the rule was changed by someone else", code="version_conflict")
        self.transact(
            [
                Write({"Put": put}, lambda: error),
                Write(
                    {
                        "Put": {
                            "Item": self._version_item(tenant_id, version),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    lambda: Conflict("the rule was changed by someone else", code="version_conflict"),
                ),
            ]
        )

    def put_state(self, tenant_id: str, rule: Rule) -> None:
        """Rewrite the rule's state (enabled, paused, failures) at the version it was read at;
        the version does not move (state is not a save)."""
        item = {**self._rule_item(tenant_id, rule), "version": rule.version}
        try:
            self.table.put_item(
                Item=item,
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":v": rule.version},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise Conflict("the rule was changed by someone else", code="version_conflict") from exc
            raise

    def get_rule(self, tenant_id: str, rule_id: str) -> Rule | None:
        item = self.get(tenant_pk(tenant_id), rule_sk(rule_id), consistent=True)
        return None if item is None else self._rule(item)

    def require_rule(self, tenant_id: str, rule_id: str) -> Rule:
        rule = self.get_rule(tenant_id, rule_id)
        if rule is None:
            raise NotFound("no such automation", code="automation_not_found")
        return rule

    def delete_rule(self, tenant_id: str, rule_id: str) -> None:
        self.delete(tenant_pk(tenant_id), rule_sk(rule_id))

    def list_rules(self, tenant_id: str, *, cursor: str | None, limit: int) -> tuple[list[Rule], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("RULE#"),
            cursor=cursor,
            limit=limit,
        )
        return [self._rule(item) for item in items], next_cursor

    def rules_for_event(self, tenant_id: str, event_type: str) -> list[Rule]:
        """The tenant's enabled rules triggered by `event_type`: one query on the sparse index."""
        rules: list[Rule] = []
        kwargs: dict[str, Any] = {
            "IndexName": INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(trigger_key(tenant_id, event_type)),
        }
        while True:
            response = self.table.query(**kwargs)
            rules.extend(self._rule(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return rules
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------------- versions
    def get_version(self, tenant_id: str, rule_id: str, version: int) -> RuleVersion | None:
        item = self.get(tenant_pk(tenant_id), version_sk(rule_id, version))
        return None if item is None else self._version(item)

    def list_versions(
        self, tenant_id: str, rule_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[RuleVersion], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(f"VER#{rule_id}#"),
            cursor=cursor,
            limit=limit,
            newest_first=True,
        )
        return [self._version(item) for item in items], next_cursor

    # ------------------------------------------------------------------------- runs
    def put_run(self, tenant_id: str, run: Run) -> None:
        self.table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": run_sk(run.rule_id, run.run_id),
                "run": run.model_dump_json(),
            }
        )

    def claim_run_id(self, tenant_id: str, rule_id: str, digest: str, run_id: str) -> str:
        """The run id of (rule, version, event) `digest`: `run_id` when this is the first time,
        else the one recorded first (an event published again later has another time)."""
        key = {"pk": tenant_pk(tenant_id), "sk": f"RUNKEY#{rule_id}#{digest}"}
        try:
            self.table.put_item(
                Item={**key, "run_id": run_id}, ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            item = self.get(key["pk"], key["sk"], consistent=True)
            return str(item["run_id"]) if item else run_id
        return run_id

    def get_run(self, tenant_id: str, rule_id: str, run_id: str) -> Run | None:
        item = self.get(tenant_pk(tenant_id), run_sk(rule_id, run_id), consistent=True)
        return None if item is None else Run.model_validate_json(item["run"])

    def list_runs(
        self, tenant_id: str, rule_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Run], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(f"RUN#{rule_id}#"),
            cursor=cursor,
            limit=limit,
            newest_first=True,
        )
        return [Run.model_validate_json(item["run"]) for item in items], next_cursor

    # ------------------------------------------------------------------------- action data
    def put_secret(self, tenant_id: str, name: str, secret: str) -> None:
        """Make `secret` the endpoint's newest signing secret (the previous one stays during a
        rotation: at most two are kept)."""
        current = self.get_secrets(tenant_id, name)
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": f"SECRET#{name}", "secrets": [secret, *current][:2]}
        )

    def get_secrets(self, tenant_id: str, name: str) -> list[str]:
        item = self.get(tenant_pk(tenant_id), f"SECRET#{name}", consistent=True)
        return [str(s) for s in item["secrets"]] if item else []

    def add_metric(self, tenant_id: str, day: str, metric: str, value: float) -> None:
        from decimal import Decimal

        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": f"METRIC#{day}#{metric}"},
            UpdateExpression="ADD #count :one, #sum :value",
            ExpressionAttributeNames={"#count": "count", "#sum": "sum"},
            ExpressionAttributeValues={":one": 1, ":value": Decimal(str(value))},
        )

    def get_metric(self, tenant_id: str, day: str, metric: str) -> tuple[int, float] | None:
        item = self.get(tenant_pk(tenant_id), f"METRIC#{day}#{metric}", consistent=True)
        return None if item is None else (int(item["count"]), float(item["sum"]))

    # ------------------------------------------------------------------------- event archive
    def archive_event(
        self, tenant_id: str, event_type: str, event_id: str, occurred_at: datetime, data: str
    ) -> None:
        """Keep a received event 90 days (`data`: its JSON text); writing it again is harmless."""
        stamp = occurred_at.astimezone(UTC).isoformat()
        self.table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": f"EVENT#{event_type}#{stamp}#{event_id}",
                "event_id": event_id,
                "event_type": event_type,
                "occurred_at": stamp,
                "data": data,
                "ttl": int(occurred_at.timestamp()) + ARCHIVE_SECONDS,
            }
        )

    def archived_events(
        self, tenant_id: str, event_type: str, start: datetime, end: datetime, *, limit: int
    ) -> tuple[list[Item], bool]:
        """Archived events of `event_type` with start <= time < end, oldest first (at most
        `limit`; True when there were more)."""
        low = f"EVENT#{event_type}#{start.astimezone(UTC).isoformat()}"
        high = f"EVENT#{event_type}#{end.astimezone(UTC).isoformat()}"
        items: list[Item] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").between(low, high),
        }
        while True:
            response = self.table.query(**kwargs)
            items.extend(i for i in response.get("Items", []) if str(i["sk"]) < high)
            if len(items) > limit:
                return items[:limit], True
            if "LastEvaluatedKey" not in response:
                return items, False
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def find_run(self, tenant_id: str, rule_id: str, digest: str) -> Run | None:
        """The run of (rule, version, event) `digest`, if there was one."""
        pointer = self.get(tenant_pk(tenant_id), f"RUNKEY#{rule_id}#{digest}")
        return None if pointer is None else self.get_run(tenant_id, rule_id, str(pointer["run_id"]))

    def put_queue(self, tenant_id: str, name: str, queue_url: str) -> None:
        self.table.put_item(Item={"pk": tenant_pk(tenant_id), "sk": f"QUEUE#{name}", "queue_url": queue_url})

    def get_queue(self, tenant_id: str, name: str) -> str | None:
        item = self.get(tenant_pk(tenant_id), f"QUEUE#{name}", consistent=True)
        return None if item is None else str(item["queue_url"])

    def put_openapi(self, tenant_id: str, document_id: str, document: str) -> None:
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": f"OPENAPI#{document_id}", "doc": document}
        )

    def get_openapi(self, tenant_id: str, document_id: str) -> dict[str, Any] | None:
        item = self.get(tenant_pk(tenant_id), f"OPENAPI#{document_id}", consistent=True)
        return None if item is None else dict(json.loads(str(item["doc"])))

    def put_outbound_hosts(self, tenant_id: str, hosts: list[str]) -> None:
        """The tenant's allowlist of hosts its actions call (`SETTINGS#OUTBOUND`; empty: none)."""
        self.table.put_item(Item={"pk": tenant_pk(tenant_id), "sk": "SETTINGS#OUTBOUND", "hosts": hosts})

    def get_outbound_hosts(self, tenant_id: str) -> list[str]:
        item = self.get(tenant_pk(tenant_id), "SETTINGS#OUTBOUND", consistent=True)
        return [] if item is None else [str(h) for h in item.get("hosts", [])]
