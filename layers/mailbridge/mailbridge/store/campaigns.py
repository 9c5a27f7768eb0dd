"""Campaign send runs in the CRM table (beside the campaign itself, `store/crm.py`).

Item types (pk = TENANT#{tenant}):
  CAMPAIGNRUN#{campaign_id}                 the campaign's send run: `state` (sending | paused |
                                            done), `cursor` (where the next chunk starts) and
                                            `prev_cursor`, the pinned `template_version`,
                                            `throttle_per_hour`, `account_id`, `base_url` (tracking
                                            links), `send_key` (the Idempotency-Key that started
                                            it), counters `n_queued`, `n_failed`, `n_skip_{reason}`
  CAMPAIGNRCPT#{campaign_id}#{contact_id}   one recipient: `state` claimed | queued | skipped |
                                            failed, `message_id` (deterministic), `email_id`
                                            once queued, `reason` when skipped or failed
  CAMPAIGNSLOT#{account_id}                 the account's next free send slot (`next_at`, UTC ISO
                                            8601): the throttle's bookkeeping across campaigns
None of these begins with `CAMPAIGN#`, so campaign listings never meet them.

Exactly once: a recipient item is created with `attribute_not_exists(pk)` before its email is
queued, and moves claimed -> queued in one transaction with the run's counter, so a counter
counts each recipient once whatever is retried. The cursor moves only forward (conditional).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, Write, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SKIP_REASONS = ("no_address", "suppressed", "contact_not_found")
SLOT_ATTEMPTS = 5


def run_sk(campaign_id: str) -> str:
    return f"CAMPAIGNRUN#{campaign_id}"


def recipient_prefix(campaign_id: str) -> str:
    return f"CAMPAIGNRCPT#{campaign_id}#"


def recipient_sk(campaign_id: str, contact_id: str) -> str:
    return f"{recipient_prefix(campaign_id)}{contact_id}"


def slot_sk(account_id: str) -> str:
    return f"CAMPAIGNSLOT#{account_id}"


@dataclass(frozen=True)
class Run:
    campaign_id: str
    state: str
    cursor: str
    prev_cursor: str | None
    started_at: str
    template_version: int
    throttle_per_hour: int
    account_id: str
    base_url: str
    send_key: str | None
    queued: int
    failed: int
    skipped: dict[str, int]


def to_run(item: Item) -> Run:
    return Run(
        campaign_id=str(item["campaign_id"]),
        state=str(item["state"]),
        cursor=str(item["cursor"]),
        prev_cursor=str(item["prev_cursor"]) if item.get("prev_cursor") else None,
        started_at=str(item["started_at"]),
        template_version=int(item["template_version"]),
        throttle_per_hour=int(item["throttle_per_hour"]),
        account_id=str(item["account_id"]),
        base_url=str(item.get("base_url") or ""),
        send_key=str(item["send_key"]) if item.get("send_key") else None,
        queued=int(item.get("n_queued") or 0),
        failed=int(item.get("n_failed") or 0),
        skipped={r: int(item[f"n_skip_{r}"]) for r in SKIP_REASONS if item.get(f"n_skip_{r}")},
    )


@dataclass(frozen=True)
class Recipient:
    contact_id: str
    state: str
    message_id: str
    email_id: str | None


class CampaignRunStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # ------------------------------------------------------------------ runs
    def get_run(self, tenant_id: str, campaign_id: str) -> Run | None:
        item = self.get(tenant_pk(tenant_id), run_sk(campaign_id), consistent=True)
        return None if item is None else to_run(item)

    def create_run(self, tenant_id: str, run: Run) -> bool:
        """False when the campaign already has a run."""
        item: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": run_sk(run.campaign_id),
            "campaign_id": run.campaign_id,
            "state": run.state,
            "cursor": run.cursor,
            "started_at": run.started_at,
            "template_version": run.template_version,
            "throttle_per_hour": run.throttle_per_hour,
            "account_id": run.account_id,
            "base_url": run.base_url,
            "n_queued": 0,
            "n_failed": 0,
        }
        if run.send_key:
            item["send_key"] = run.send_key
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def set_state(self, tenant_id: str, campaign_id: str, state: str, *, only_from: tuple[str, ...]) -> bool:
        """Move the run to `state` if it is in one of `only_from`; False otherwise."""
        values: dict[str, Any] = {":state": state}
        values.update({f":from{i}": s for i, s in enumerate(only_from)})
        allowed = ", ".join(f":from{i}" for i in range(len(only_from)))
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": run_sk(campaign_id)},
                UpdateExpression="SET #state = :state",
                ConditionExpression=f"#state IN ({allowed})",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def advance(self, tenant_id: str, campaign_id: str, cursor: str, next_cursor: str, *, done: bool) -> bool:
        """Move the cursor from `cursor` to `next_cursor` (and to `done` at the end); False when
        another delivery of the same chunk moved it first."""
        names = {"#cursor": "cursor"}
        values: dict[str, Any] = {":cursor": cursor, ":next": next_cursor}
        update = "SET #cursor = :next, prev_cursor = :cursor"
        if done:
            update += ", #state = :done"
            names["#state"] = "state"
            values[":done"] = "done"
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": run_sk(campaign_id)},
                UpdateExpression=update,
                ConditionExpression="#cursor = :cursor",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ recipients
    def get_recipients(
        self, tenant_id: str, campaign_id: str, contact_ids: list[str]
    ) -> dict[str, Recipient]:
        """The recipient items that exist among `contact_ids` (consistent BatchGetItem per 100)."""
        found: dict[str, Recipient] = {}
        for start in range(0, len(contact_ids), 100):
            keys = [
                {"pk": tenant_pk(tenant_id), "sk": recipient_sk(campaign_id, c)}
                for c in contact_ids[start : start + 100]
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[str(item["contact_id"])] = Recipient(
                        contact_id=str(item["contact_id"]),
                        state=str(item["state"]),
                        message_id=str(item.get("message_id") or ""),
                        email_id=str(item["email_id"]) if item.get("email_id") else None,
                    )
                request = response.get("UnprocessedKeys") or {}
        return found

    def claim(self, tenant_id: str, campaign_id: str, contact_id: str, message_id: str) -> bool:
        """Create the recipient as `claimed` before its email is queued; False when it exists."""
        try:
            self.table.put_item(
                Item={
                    "pk": tenant_pk(tenant_id),
                    "sk": recipient_sk(campaign_id, contact_id),
                    "contact_id": contact_id,
                    "state": "claimed",
                    "message_id": message_id,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def _counter(self, tenant_id: str, campaign_id: str, counter: str) -> Write:
        return Write(
            {
                "Update": {
                    "Key": {"pk": tenant_pk(tenant_id), "sk": run_sk(campaign_id)},
                    "UpdateExpression": f"ADD {counter} :one",
                    "ExpressionAttributeValues": {":one": 1},
                }
            },
            lambda: Conflict("the run is gone", code="conflict"),
        )

    def finish(
        self,
        tenant_id: str,
        campaign_id: str,
        contact_id: str,
        state: str,
        *,
        email_id: str | None,
        reason: str | None,
    ) -> bool:
        """claimed -> queued | failed, counted on the run in the same transaction; False when the
        recipient was already finished (another delivery)."""
        key = {"pk": tenant_pk(tenant_id), "sk": recipient_sk(campaign_id, contact_id)}
        values: dict[str, Any] = {
            ":state": state,
            ":claimed": "claimed",
            ":email": email_id,
            ":reason": reason,
        }
        update = Write(
            {
                "Update": {
                    "Key": key,
                    "UpdateExpression": "SET #state = :state, email_id = :email, reason = :reason",
                    "ConditionExpression": "#state = :claimed",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": values,
                }
            },
            lambda: Conflict("already finished", code="already_finished"),
        )
        return self._counted(update, self._counter(tenant_id, campaign_id, f"n_{state}"))

    def skip(self, tenant_id: str, campaign_id: str, contact_id: str, reason: str) -> bool:
        """Record the recipient as skipped (`reason`), counted once; False when it exists."""
        put = Write(
            {
                "Put": {
                    "Item": {
                        "pk": tenant_pk(tenant_id),
                        "sk": recipient_sk(campaign_id, contact_id),
                        "contact_id": contact_id,
                        "state": "skipped",
                        "reason": reason,
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            lambda: Conflict("already recorded", code="already_finished"),
        )
        return self._counted(put, self._counter(tenant_id, campaign_id, f"n_skip_{reason}"))

    def _counted(self, write: Write, counter: Write) -> bool:
        try:
            self.transact([write, counter])
        except Conflict as exc:
            if exc.code == "already_finished":
                return False
            raise
        return True

    def recipient_emails(self, tenant_id: str, campaign_id: str) -> Iterator[str]:
        """The email id of every queued recipient (one Query per 1 MB page)."""
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(recipient_prefix(campaign_id)),
            ProjectionExpression="email_id",
        ):
            if item.get("email_id"):
                yield str(item["email_id"])

    def queued_contacts(self, tenant_id: str, campaign_id: str) -> Iterator[str]:
        """The contact id of every recipient the campaign's email was queued for (one Query per
        1 MB page)."""
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(recipient_prefix(campaign_id)),
            ProjectionExpression="contact_id, #st",
            ExpressionAttributeNames={"#st": "state"},
        ):
            if item.get("state") == "queued":
                yield str(item["contact_id"])

    # ------------------------------------------------------------------ throttle
    def reserve_slots(
        self, tenant_id: str, account_id: str, count: int, interval: timedelta, earliest: datetime
    ) -> datetime:
        """Reserve `count` send slots `interval` apart on the account; returns the first. Slots
        never overlap another reservation (conditional on the stored `next_at`)."""
        key = {"pk": tenant_pk(tenant_id), "sk": slot_sk(account_id)}
        for _ in range(SLOT_ATTEMPTS):
            item = self.get(key["pk"], key["sk"], consistent=True)
            current = str(item["next_at"]) if item else None
            first = max(earliest, datetime.fromisoformat(current)) if current else earliest
            after = first + interval * count
            condition = "attribute_not_exists(pk)" if current is None else "next_at = :current"
            values: dict[str, Any] = {":next": after.isoformat()}
            if current is not None:
                values[":current"] = current
            try:
                self.table.update_item(
                    Key=key,
                    UpdateExpression="SET next_at = :next",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except Exception as exc:
                if is_condition_failure(exc):
                    continue
                raise
            return first
        raise Conflict("the account's send slots are busy; try again", code="conflict")
