"""Persistence of GDPR erase/export jobs, and the tenant-wide reads and writes they make.

Jobs live in the settings table (template.yaml, beside SettingsTable):
  pk = TENANT#{tenant}, sk = PRIVACYJOB#{job_id}               the job: kind, state, step, phase,
                                                              cursor, counts, the subject while it runs
  pk = TENANT#{tenant}, sk = PRIVACYJOB#{job_id}#T#{id}        an email or draft id the job found
                                                              naming the subject (deleted at the end)
A job moves one `step` at a time: each write is conditional on the step it read, so a redelivered
or duplicated queue message can never move a job twice or backwards.

  pk = TENANT#{tenant}, sk = PRIVACYJOB#{job_id}#A#{address}  a participant address of a target
                                                              (the links table's participant index
                                                              partitions to read; deleted at the end)
`TenantTables` reads a tenant's items one partition at a time (a Query on a table partition, or
on a GSI partition whose items are then read in full), and deletes or rewrites single items; `ObjectArea`
lists and deletes every version of a tenant's objects in the mail bucket (the bucket is versioned:
deleting only the current version would leave the data in a noncurrent one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key

from mailbridge import aws
from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_s3 import S3Client

JOB_PREFIX = "PRIVACYJOB#"
RETENTION_SK = "RETENTION"


def job_sk(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}"


def _target_prefix(job_id: str) -> str:
    return f"{job_sk(job_id)}#T#"


def _address_prefix(job_id: str) -> str:
    return f"{job_sk(job_id)}#A#"


class PrivacyJobStore(DynamoRepository):
    """Jobs and their target lists in the settings table."""

    def create_job(self, tenant_id: str, item: Item) -> None:
        self.table.put_item(
            Item={**item, "pk": tenant_pk(tenant_id), "sk": job_sk(str(item["job_id"]))},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_job(self, tenant_id: str, job_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), job_sk(job_id), consistent=True)

    def save_step(self, tenant_id: str, item: Item, *, read_step: int) -> None:
        """Write the job as it is after step `read_step`; `Conflict` if another run moved it."""
        try:
            self.table.put_item(
                Item={**item, "pk": tenant_pk(tenant_id), "sk": job_sk(str(item["job_id"]))},
                ConditionExpression="#s = :read",
                ExpressionAttributeNames={"#s": "step"},
                ExpressionAttributeValues={":read": read_step},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise Conflict("the job moved on", code="job_moved") from exc
            raise

    def mark_sent(self, tenant_id: str, job_id: str, step: int) -> None:
        """Record that the message of step `step` went out (`sent_step`), while the job is still
        at that step; a job that moved on already (or is gone) is left as it is."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": job_sk(job_id)},
                UpdateExpression="SET sent_step = :step",
                ConditionExpression="#s = :step",
                ExpressionAttributeNames={"#s": "step"},
                ExpressionAttributeValues={":step": step},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def jobs_of(self, tenant_id: str) -> list[Item]:
        """Every privacy job of the tenant (not their target items)."""
        condition = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(JOB_PREFIX)
        jobs: list[Item] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition}
        while True:
            page = self.table.query(**kwargs)
            # The job itself, not its target or address items (PRIVACYJOB#{id}#...).
            jobs.extend(i for i in page.get("Items", []) if "#" not in str(i["sk"])[len(JOB_PREFIX) :])
            if "LastEvaluatedKey" not in page:
                return jobs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete_job(self, tenant_id: str, job_id: str) -> None:
        self.delete(tenant_pk(tenant_id), job_sk(job_id))

    # The tenant's retention setting: sk = RETENTION (retention_days, updated_at, updated_by,
    # last_job_id).
    def get_retention(self, tenant_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), RETENTION_SK, consistent=True)

    def put_retention(self, tenant_id: str, days: int | None, by: str, at: str) -> None:
        if days is None:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": RETENTION_SK},
                UpdateExpression="REMOVE retention_days SET updated_at = :at, updated_by = :by",
                ExpressionAttributeValues={":at": at, ":by": by},
            )
            return
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": RETENTION_SK},
            UpdateExpression="SET retention_days = :d, updated_at = :at, updated_by = :by",
            ExpressionAttributeValues={":d": days, ":at": at, ":by": by},
        )

    def note_retention_job(self, tenant_id: str, job_id: str) -> None:
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": RETENTION_SK},
            UpdateExpression="SET last_job_id = :j",
            ExpressionAttributeValues={":j": job_id},
        )

    def retention_settings(self) -> Iterator[tuple[str, int]]:
        """(tenant, days) of every tenant with a retention: a Scan of the settings table (a few
        items per tenant), once a day."""
        kwargs: dict[str, Any] = {
            "FilterExpression": Attr("sk").eq(RETENTION_SK) & Attr("retention_days").exists()
        }
        while True:
            page = self.table.scan(**kwargs)
            for item in page.get("Items", []):
                yield str(item["pk"]).removeprefix("TENANT#"), int(str(item["retention_days"]))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def add_targets(self, tenant_id: str, job_id: str, ids: Iterable[str]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for target in ids:
                batch.put_item(Item={"pk": tenant_pk(tenant_id), "sk": f"{_target_prefix(job_id)}{target}"})

    def add_addresses(self, tenant_id: str, job_id: str, addresses: Iterable[str]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for address in addresses:
                batch.put_item(Item={"pk": tenant_pk(tenant_id), "sk": f"{_address_prefix(job_id)}{address}"})

    def addresses(self, tenant_id: str, job_id: str) -> set[str]:
        """The participant addresses of the job's targets (`add_addresses`)."""
        prefix = _address_prefix(job_id)
        return {sk[len(prefix) :] for sk in self._child_keys(tenant_id, prefix)}

    def _target_keys(self, tenant_id: str, job_id: str) -> list[str]:
        return self._child_keys(tenant_id, _target_prefix(job_id))

    def _child_keys(self, tenant_id: str, prefix: str) -> list[str]:
        condition = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(prefix)
        sks: list[str] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ConsistentRead": True}
        while True:
            page = self.table.query(**kwargs)
            sks.extend(str(i["sk"]) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sks
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def targets(self, tenant_id: str, job_id: str) -> set[str]:
        prefix = _target_prefix(job_id)
        return {sk[len(prefix) :] for sk in self._target_keys(tenant_id, job_id)}

    def drop_targets(self, tenant_id: str, job_id: str) -> None:
        keys = [*self._target_keys(tenant_id, job_id), *self._child_keys(tenant_id, _address_prefix(job_id))]
        with self.table.batch_writer() as batch:
            for sk in keys:
                batch.delete_item(Key={"pk": tenant_pk(tenant_id), "sk": sk})

    def connected_account(self, accounts_table: str, tenant_id: str, address: str) -> bool:
        """Whether `address` is one of the tenant's connected mailboxes (accounts table's
        UNIQUE#ADDRESS#{address} item, store/accounts.py)."""
        table = aws.dynamodb().Table(accounts_table)
        key = {"pk": tenant_pk(tenant_id), "sk": f"UNIQUE#ADDRESS#{address.lower()}"}
        return "Item" in table.get_item(Key=key)


@dataclass(frozen=True)
class Page:
    items: list[Item]
    cursor: str | None  # None: the last page


@dataclass(frozen=True)
class Partition:
    """One partition a tenant's items are read from: the table's (`index` None: pk = `value`) or
    a GSI's (`{index}pk` = `value`; the index holds only some attributes, so its items are then
    read in full from the table)."""

    value: str
    index: str | None = None


BATCH_GET = 100  # BatchGetItem's limit on keys per request (DynamoDB API reference)


class TenantTables:
    """Page through, delete and rewrite one tenant's items of any mailbridge table."""

    def __init__(self, tables: Mapping[str, Table] | None = None) -> None:
        self._tables: dict[str, Table] = dict(tables or {})
        self._keys: dict[str, list[str]] = {}

    def _table(self, name: str) -> Table:
        if name not in self._tables:
            self._tables[name] = aws.dynamodb().Table(name)
        return self._tables[name]

    def key_names(self, name: str) -> list[str]:
        if name not in self._keys:
            self._keys[name] = [str(k["AttributeName"]) for k in self._table(name).key_schema]
        return self._keys[name]

    def query_page(self, name: str, partition: Partition, cursor: str | None, limit: int) -> Page:
        """Up to `limit` items of one partition (a Query; consistent on the table, and for a GSI
        the matched items read again, consistently, by their keys: one that is gone is skipped)."""
        key = "pk" if partition.index is None else f"{partition.index}pk"
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key(key).eq(partition.value), "Limit": limit}
        if partition.index is None:
            kwargs["ConsistentRead"] = True
        else:
            kwargs["IndexName"] = partition.index
        if cursor:
            kwargs["ExclusiveStartKey"] = json.loads(cursor)
        table = self._table(name)
        response = table.query(**kwargs)
        items = list(response.get("Items", []))
        if partition.index is not None:
            items = self._full(name, items)
        last = response.get("LastEvaluatedKey")
        return Page(items, json.dumps(last, sort_keys=True) if last else None)

    def _full(self, name: str, projected: list[Item]) -> list[Item]:
        names = self.key_names(name)
        keys = list(
            {
                json.dumps({k: i[k] for k in names}, sort_keys=True): {k: i[k] for k in names}
                for i in projected
            }.values()
        )
        client = self._table(name).meta.client
        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET):
            request: dict[str, Any] = {
                name: {"Keys": keys[start : start + BATCH_GET], "ConsistentRead": True}
            }
            while request:
                response = client.batch_get_item(RequestItems=request)
                found.extend(response.get("Responses", {}).get(name, []))
                request = response.get("UnprocessedKeys") or {}
        return found

    def page(self, name: str, tenant_id: str, cursor: str | None, limit: int) -> Page:
        """Up to `limit` evaluated items of the table, of this tenant only (pk = TENANT#{t} or
        starting with TENANT#{t}#): a Scan of the whole table, for the one table no key or index
        lists a tenant's partitions of (notifications, by user: privacy.service)."""
        pk = tenant_pk(tenant_id)
        kwargs: dict[str, Any] = {
            "FilterExpression": Attr("pk").eq(pk) | Attr("pk").begins_with(f"{pk}#"),
            "Limit": limit,
            "ConsistentRead": True,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = json.loads(cursor)
        response = self._table(name).scan(**kwargs)
        last = response.get("LastEvaluatedKey")
        return Page(list(response.get("Items", [])), json.dumps(last, sort_keys=True) if last else None)

    def delete(self, name: str, item: Item) -> bool:
        """Delete the item; False when it was already gone (a repeated step)."""
        key = {k: item[k] for k in self.key_names(name)}
        response = self._table(name).delete_item(Key=key, ReturnValues="ALL_OLD")
        return bool(response.get("Attributes"))

    def rewrite(self, name: str, original: Item, scrubbed: Item) -> bool:
        """Replace `original` by `scrubbed` if it is still there (and, for a versioned record,
        still at the version read); False otherwise: the step is repeated and judges it again."""
        first = self.key_names(name)[0]
        condition = "attribute_exists(#k)"
        names = {"#k": first}
        values: dict[str, Any] = {}
        if "version" in original:
            condition += " AND #v = :v"
            names["#v"] = "version"
            values[":v"] = original["version"]
        kwargs: dict[str, Any] = {
            "Item": scrubbed,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._table(name).put_item(**kwargs)
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str | None


@dataclass(frozen=True)
class ObjectPage:
    versions: list[ObjectVersion]
    cursor: str | None


class ObjectArea:
    """Every version of the objects under a prefix of the mail bucket; the export archives."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3()
        return self._client

    def page(self, prefix: str, cursor: str | None, limit: int) -> ObjectPage:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if cursor:
            marker = json.loads(cursor)
            kwargs["KeyMarker"] = marker["key"]
            if marker.get("version"):
                kwargs["VersionIdMarker"] = marker["version"]
        response = self.client.list_object_versions(**kwargs)
        found = [*response.get("Versions", []), *response.get("DeleteMarkers", [])]
        versions = [ObjectVersion(str(v["Key"]), v.get("VersionId")) for v in found]
        if not response.get("IsTruncated"):
            return ObjectPage(versions, None)
        nxt = {"key": response.get("NextKeyMarker"), "version": response.get("NextVersionIdMarker")}
        return ObjectPage(versions, json.dumps(nxt))

    def delete(self, versions: Sequence[ObjectVersion]) -> int:
        """Delete these versions (deleting a version removes it for good: no delete marker)."""
        deleted = 0
        for start in range(0, len(versions), 1000):
            chunk = versions[start : start + 1000]
            objects: list[Any] = [
                {"Key": v.key, **({"VersionId": v.version_id} if v.version_id else {})} for v in chunk
            ]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": False}
            )
            errors = response.get("Errors", [])
            if errors:
                raise RuntimeError(f"{len(errors)} objects could not be deleted ({errors[0].get('Code')})")
            deleted += len(response.get("Deleted", []))
        return deleted

    def delete_prefix(self, prefix: str) -> int:
        """Every version under `prefix`, page by page."""
        deleted, cursor = 0, None
        while True:
            page = self.page(prefix, cursor, 1000)
            deleted += self.delete(page.versions)
            if page.cursor is None:
                return deleted
            cursor = page.cursor

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, data: bytes, content_type: str, kms_key_id: str | None = None) -> None:
        extra: dict[str, Any] = {}
        if kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(str(o["Key"]) for o in page.get("Contents", []))
        return found

    def presign(self, key: str, filename: str, expires_in: int) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": "application/zip",
        }
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
