"""Campaign send runs in the CRM table (beside the campaign itself, `store/crm.py`).

Item types (pk = TENANT#{tenant}):
  CAMPAIGNRUN#{campaign_id}                 the campaign's send run: `state` (sending | paused |
                                            done), `cursor` (where the next chunk starts) and
                                            `prev_cursor`, the pinned `template_version`,
                                            `throttle_per_hour`, `account_id`, `base_url` (tracking
                                            links), `send_key` (the Idempotency-Key that started
                                            it)
  CAMPAIGNRCPT#{campaign_id}#{contact_id}   one recipient: `state` claimed | queued | skipped |
                                            failed, `message_id` (deterministic), `email_id`
                                            once queued, `reason` when skipped or failed
  CAMPAIGNSLOT#{account_id}                 the account's next free send slot (`next_at`, UTC ISO
                                            8601): the throttle's bookkeeping across campaigns
None of these begins with `CAMPAIGN#`, so campaign listings never meet them.

Exactly once: a recipient item is created `claimed` with `attribute_not_exists(pk)` (one
conditional PutItem each) before its email is queued; only the delivery that claimed it stores
its email without a condition, and one that finds it claimed by an attempt that stopped stores
the email conditionally (`outbox.service.queue_drafts`). Finishing (claimed -> queued | failed)
is a plain BatchWriteItem of deterministic values. The run's counts are counted from the
recipient items when asked (`counts`), not kept as counters that a retry could count twice.
The cursor moves only forward (conditional).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.batch import batch_get, batch_put
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
    )


@dataclass(frozen=True)
class Recipient:
    contact_id: str
    state: str
    message_id: str
    email_id: str | None


@dataclass(frozen=True)
class Outcome:
    """How a claimed recipient finished: `queued` with its email, or `failed` with a reason."""

    contact_id: str
    state: str
    message_id: str
    email_id: str | None = None
    reason: str | None = None


@dataclass
class RecipientCounts:
    queued: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    email_ids: list[str] = field(default_factory=list)


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
        keys = [{"pk": tenant_pk(tenant_id), "sk": recipient_sk(campaign_id, c)} for c in contact_ids]
        return {
            str(item["contact_id"]): Recipient(
                contact_id=str(item["contact_id"]),
                state=str(item["state"]),
                message_id=str(item.get("message_id") or ""),
                email_id=str(item["email_id"]) if item.get("email_id") else None,
            )
            for item in batch_get(self.client, self.table_name, keys, consistent=True)
        }

    def _create(self, item: Item) -> bool:
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def claim_many(self, tenant_id: str, campaign_id: str, claims: Sequence[tuple[str, str]]) -> set[str]:
        """Create each (contact id, message id) as `claimed` before its email is queued: one
        conditional PutItem each (`attribute_not_exists`), the write exactly-once rests on (a
        transaction would let one recipient another delivery claimed cancel the others, and
        costs each of its actions twice). Returns the contact ids this call claimed."""
        return {
            contact_id
            for contact_id, message_id in claims
            if self._create(
                {
                    "pk": tenant_pk(tenant_id),
                    "sk": recipient_sk(campaign_id, contact_id),
                    "contact_id": contact_id,
                    "state": "claimed",
                    "message_id": message_id,
                }
            )
        }

    def skip_many(self, tenant_id: str, campaign_id: str, skips: Sequence[tuple[str, str]]) -> None:
        """Record each (contact id, reason) as skipped, unless the recipient exists (one
        conditional PutItem each: skips are the exception, and a duplicate delivery that
        queued the contact meanwhile must not be overwritten)."""
        for contact_id, reason in skips:
            self._create(
                {
                    "pk": tenant_pk(tenant_id),
                    "sk": recipient_sk(campaign_id, contact_id),
                    "contact_id": contact_id,
                    "state": "skipped",
                    "reason": reason,
                }
            )

    def finish_many(self, tenant_id: str, campaign_id: str, outcomes: Sequence[Outcome]) -> None:
        """Claimed recipients -> queued | failed, 25 a BatchWriteItem. Plain puts: only the
        delivery holding a recipient's claim finishes it, with what its deterministic
        Message-ID gave (the same email id on every attempt), so writing it again changes
        nothing; the run's counts are counted from these items (`counts`)."""
        items: list[Item] = []
        for outcome in outcomes:
            item: Item = {
                "pk": tenant_pk(tenant_id),
                "sk": recipient_sk(campaign_id, outcome.contact_id),
                "contact_id": outcome.contact_id,
                "state": outcome.state,
                "message_id": outcome.message_id,
            }
            if outcome.email_id:
                item["email_id"] = outcome.email_id
            if outcome.reason:
                item["reason"] = outcome.reason
            items.append(item)
        batch_put(self.client, self.table_name, items)

    def counts(self, tenant_id: str, campaign_id: str) -> RecipientCounts:
        """The run's recipients counted by state (skipped by reason) and the email ids of the
        queued ones: one Query per 1 MB page of the run's recipient items (small items: about
        10,000 to a page)."""
        counts = RecipientCounts()
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(recipient_prefix(campaign_id)),
            ProjectionExpression="#state, email_id, reason",
            ExpressionAttributeNames={"#state": "state"},
        ):
            state = str(item.get("state"))
            if state == "queued":
                counts.queued += 1
                if item.get("email_id"):
                    counts.email_ids.append(str(item["email_id"]))
            elif state == "failed":
                counts.failed += 1
            elif state == "skipped":
                reason = str(item.get("reason") or "")
                counts.skipped[reason] = counts.skipped.get(reason, 0) + 1
        return counts

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
