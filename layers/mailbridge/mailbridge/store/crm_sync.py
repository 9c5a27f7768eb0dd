"""CRM sync logs (`crm_sync_logs`) and status (`crm_sync_status`), in the crm table.

Item types (pk = TENANT#{tenant}):
  CRMRUN#{integration_id}#{run_id}               a run: kind, direction, state, times, counts
      (`total`, `succeeded`, `failed`, `conflicts`, added atomically by `record`) and `errors`
      (a map error code -> count; codes only, never values). Run ids start with the start time
      in hex, so `ScanIndexForward=false` lists the newest first.
  CRMREC#{integration_id}#{run_id}#{direction}#{remote_id}
                                                 one record of a run (remote id, our id, direction,
      state, error code); keyed by the record, so a retried `record` call rewrites, never doubles
      the entry (the counts of a retried batch are the caller's to avoid: `record` is per batch)
  CRMSYNCCFG#{integration_id}                    its sync settings (`settings`: field mapping,
      conflict policy, deletions, as JSON) and `version`
  CRMSTATUS#{integration_id}                     the integration's last run, state, last error
      and watermarks per kind; a watermark moves only with a run started after the one that
      wrote it (conditional update), so a slow older run cannot move it back.

The sync service (mailbridge.crm.sync.service) calls `start_run`, `record` (per batch) and `finish_run`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailbridge.crm.integrations.models import (
    ERROR_CODE,
    RunDirection,
    SyncErrorCount,
    SyncKind,
    SyncRecord,
    SyncRun,
    SyncStatus,
)
from mailbridge.errors import Invalid, NotFound
from mailbridge.store.base import DynamoRepository, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def run_prefix(integration_id: str) -> str:
    return f"CRMRUN#{integration_id}#"


def status_sk(integration_id: str) -> str:
    return f"CRMSTATUS#{integration_id}"


def settings_sk(integration_id: str) -> str:
    return f"CRMSYNCCFG#{integration_id}"


def new_run_id(at: datetime) -> str:
    """`run_` + milliseconds since the epoch (12 hex digits) + 8 random hex digits: time-ordered."""
    return f"run_{int(at.timestamp() * 1000):012x}{secrets.token_hex(4)}"


class RunNotFound(NotFound):
    code = "run_not_found"


def _run(item: dict[str, Any]) -> SyncRun:
    errors = item.get("errors") or {}
    return SyncRun(
        run_id=item["run_id"],
        integration_id=item["integration_id"],
        kind=item["kind"],
        direction=item["direction"],
        state=item["run_state"],
        started_at=datetime.fromisoformat(item["started_at"]),
        ended_at=datetime.fromisoformat(item["ended_at"]) if item.get("ended_at") else None,
        total=int(item.get("total", 0)),
        succeeded=int(item.get("succeeded", 0)),
        failed=int(item.get("failed", 0)),
        conflicts=int(item.get("conflicts", 0)),
        errors=[SyncErrorCount(code=code, count=int(n)) for code, n in sorted(errors.items())],
    )


class SyncLogStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def start_run(
        self,
        tenant_id: str,
        integration_id: str,
        kind: SyncKind,
        direction: RunDirection,
        *,
        now: datetime | None = None,
    ) -> SyncRun:
        """A new run in state `running`; the status shows it running."""
        at = now or datetime.now(UTC)
        run_id = new_run_id(at)
        self.create(
            {
                "pk": tenant_pk(tenant_id),
                "sk": run_prefix(integration_id) + run_id,
                "run_id": run_id,
                "integration_id": integration_id,
                "kind": kind,
                "direction": direction,
                "run_state": "running",
                "started_at": at.isoformat(),
                "total": 0,
                "succeeded": 0,
                "failed": 0,
                "conflicts": 0,
                "errors": {},
            }
        )
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": status_sk(integration_id)},
            UpdateExpression=(
                "SET integration_id = :i, #st = :running, last_run_id = :r, last_run_at = :at, "
                "watermarks = if_not_exists(watermarks, :empty), started = if_not_exists(started, :empty)"
            ),
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues={
                ":i": integration_id,
                ":running": "running",
                ":r": run_id,
                ":at": at.isoformat(),
                ":empty": {},
            },
        )
        return SyncRun(
            run_id=run_id,
            integration_id=integration_id,
            kind=kind,
            direction=direction,
            state="running",
            started_at=at,
        )

    def record(self, tenant_id: str, run: SyncRun, entries: Sequence[SyncRecord]) -> None:
        """One batch of records: their entries written and the run's counts and error codes added."""
        if not entries:
            return
        pk = tenant_pk(tenant_id)
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for entry in entries:
                batch.put_item(
                    Item={
                        "pk": pk,
                        "sk": f"CRMREC#{run.integration_id}#{run.run_id}#{entry.direction}#{entry.remote_id}",
                        **entry.model_dump(mode="json", exclude_none=True),
                    }
                )
        counts = {
            "total": len(entries),
            "succeeded": sum(e.state == "succeeded" for e in entries),
            "failed": sum(e.state == "failed" for e in entries),
            "conflicts": sum(e.state == "conflict" for e in entries),
        }
        codes: dict[str, int] = {}
        for entry in entries:
            if entry.error_code:
                codes[entry.error_code] = codes.get(entry.error_code, 0) + 1
        self._add(tenant_id, run, counts, codes)

    def _add(self, tenant_id: str, run: SyncRun, counts: dict[str, int], codes: dict[str, int]) -> None:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds = []
        for n, (name, value) in enumerate(counts.items()):
            names[f"#c{n}"] = name
            adds.append(f"#c{n} :c{n}")
            values[f":c{n}"] = value
        for n, (code, value) in enumerate(sorted(codes.items())):
            if not ERROR_CODE.fullmatch(code):
                raise Invalid("an error code is malformed", code="invalid_error_code")
            names["#errors"] = "errors"
            names[f"#e{n}"] = code
            adds.append(f"#errors.#e{n} :e{n}")
            values[f":e{n}"] = value
        if not adds:
            return
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": run_prefix(run.integration_id) + run.run_id},
                UpdateExpression="ADD " + ", ".join(adds),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise RunNotFound("no such run") from exc
            raise

    def finish_run(
        self,
        tenant_id: str,
        run: SyncRun,
        *,
        watermark: str | None = None,
        watermarks: Mapping[str, str] | None = None,
        error_code: str | None = None,
        now: datetime | None = None,
    ) -> SyncRun:
        """End the run: `failed` with `error_code` (the run itself failed), else `partial` when a
        record failed, else `succeeded`; the status takes the state, the last error and (if given,
        and no newer run set one) the run's kind's watermark, and each of `watermarks` under its
        own name (a two-way sync keeps `contacts` for the CRM side and `contacts_push` for ours).
        Raises RunNotFound."""
        at = now or datetime.now(UTC)
        if error_code is not None:
            self._add(tenant_id, run, {}, {error_code: 1})
        current = self.get_run(tenant_id, run.integration_id, run.run_id)
        state = "failed" if error_code else ("partial" if current.failed else "succeeded")
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": run_prefix(run.integration_id) + run.run_id},
            UpdateExpression="SET run_state = :state, ended_at = :at",
            ExpressionAttributeValues={":state": state, ":at": at.isoformat()},
        )
        last_error = error_code or (current.errors[0].code if current.errors else None)
        marks = dict(watermarks or {})
        if watermark is not None:
            marks[run.kind] = watermark
        self._status_after(tenant_id, run, state, last_error, marks)
        return self.get_run(tenant_id, run.integration_id, run.run_id)

    def _status_after(
        self, tenant_id: str, run: SyncRun, state: str, last_error: str | None, watermarks: Mapping[str, str]
    ) -> None:
        key = {"pk": tenant_pk(tenant_id), "sk": status_sk(run.integration_id)}
        try:
            self.table.update_item(
                Key=key,
                UpdateExpression="SET #st = :state, last_error = :err",
                ConditionExpression="last_run_id = :r",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":state": state, ":err": last_error, ":r": run.run_id},
            )
        except Exception as exc:  # a newer run started: its state is the status's
            if not is_condition_failure(exc):
                raise
        for name, watermark in sorted(watermarks.items()):
            try:
                self.table.update_item(
                    Key=key,
                    UpdateExpression="SET watermarks.#k = :w, started.#k = :r",
                    ConditionExpression="attribute_not_exists(started.#k) OR started.#k < :r",
                    ExpressionAttributeNames={"#k": name},
                    ExpressionAttributeValues={":w": watermark, ":r": run.run_id},
                )
            except Exception as exc:  # a newer run of this kind moved it already
                if not is_condition_failure(exc):
                    raise

    # ------------------------------------------------------------------ sync settings

    def get_settings(self, tenant_id: str, integration_id: str) -> dict[str, Any] | None:
        """The integration's saved sync settings (`SyncSettingsBody` as JSON) and `version`."""
        item = self.get(tenant_pk(tenant_id), settings_sk(integration_id), consistent=True)
        if item is None:
            return None
        return {**item["settings"], "version": int(item["version"])}

    def put_settings(self, tenant_id: str, integration_id: str, settings: dict[str, Any]) -> int:
        """Replace the sync settings; the new version."""
        answer = self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": settings_sk(integration_id)},
            UpdateExpression="SET settings = :s ADD version :one",
            ExpressionAttributeValues={":s": settings, ":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        return int(str(answer["Attributes"]["version"]))

    # ------------------------------------------------------------------ reads

    def get_run(self, tenant_id: str, integration_id: str, run_id: str) -> SyncRun:
        item = self.get(tenant_pk(tenant_id), run_prefix(integration_id) + run_id, consistent=True)
        if item is None:
            raise RunNotFound("no such run")
        return _run(item)

    def runs(
        self,
        tenant_id: str,
        integration_id: str,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> tuple[list[SyncRun], str | None]:
        """The integration's runs, newest first."""
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(run_prefix(integration_id)),
            cursor=cursor,
            limit=limit,
            newest_first=True,
        )
        return [_run(item) for item in items], next_cursor

    def records(self, tenant_id: str, run: SyncRun) -> list[SyncRecord]:
        prefix = f"CRMREC#{run.integration_id}#{run.run_id}#"
        return [
            SyncRecord.model_validate({k: v for k, v in item.items() if k in SyncRecord.model_fields})
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(prefix)
            )
        ]

    def status(self, tenant_id: str, integration_id: str) -> SyncStatus:
        item = self.get(tenant_pk(tenant_id), status_sk(integration_id), consistent=True)
        if item is None:
            return SyncStatus(integration_id=integration_id)
        return SyncStatus(
            integration_id=integration_id,
            state=item.get("state", "never"),
            last_run_id=item.get("last_run_id"),
            last_run_at=datetime.fromisoformat(item["last_run_at"]) if item.get("last_run_at") else None,
            last_error=item.get("last_error"),
            watermarks={str(k): str(v) for k, v in (item.get("watermarks") or {}).items()},
        )

    def delete_all(self, tenant_id: str, integration_id: str) -> None:
        """Every run, record and the status of an integration (when it is removed)."""
        pk = tenant_pk(tenant_id)
        keys = [
            {"pk": pk, "sk": item["sk"]}
            for prefix in (run_prefix(integration_id), f"CRMREC#{integration_id}#")
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with(prefix),
                ProjectionExpression="sk",
            )
        ]
        keys.append({"pk": pk, "sk": status_sk(integration_id)})
        keys.append({"pk": pk, "sk": settings_sk(integration_id)})
        with self.table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
