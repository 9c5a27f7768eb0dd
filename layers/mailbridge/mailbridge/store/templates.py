"""Email templates, kept in the automations table (template.yaml `AutomationsTable` lists the keys).

Why that table and not one of their own: a template has the automations' shape (a head item at
its latest version, immutable version items, per-tenant listing by sort-key prefix, no index
needed) and is content the automations' `email.send` action is meant to use; its partition is the
tenant's, so nothing new to provision, grant or back up.

| item | pk | sk | notes |
|---|---|---|---|
| template (latest) | `TENANT#{t}` | `TEMPLATE#{template_id}` | `doc`: the fields as JSON text |
| template version | `TENANT#{t}` | `TPLVER#{template_id}#{version:08d}` | written once, never changed |
| templated send | `TENANT#{t}` | `TPLSEND#{template_id}#{email_id}` | `variant`, `version` (stats) |

Only this module touches these items.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key

from mailbridge.errors import Conflict, NotFound
from mailbridge.store.base import DynamoRepository, Item, Write, tenant_pk
from mailbridge.store.batch import batch_put
from mailbridge.templates.models import Template, TemplateFields, TemplateVersion

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_DOC_FIELDS = set(TemplateFields.model_fields)


def template_sk(template_id: str) -> str:
    return f"TEMPLATE#{template_id}"


def version_sk(template_id: str, version: int) -> str:
    return f"TPLVER#{template_id}#{version:08d}"


def send_sk(template_id: str, email_id: str) -> str:
    return f"TPLSEND#{template_id}#{email_id}"


def _doc(model: TemplateFields) -> str:
    return json.dumps(model.model_dump(mode="json", include=_DOC_FIELDS), separators=(",", ":"))


def _meta(model: Template | TemplateVersion) -> Item:
    return model.model_dump(mode="json", exclude=_DOC_FIELDS | {"version"})


def _send_item(tenant_id: str, template_id: str, email_id: str, version: int, variant: str | None) -> Item:
    item: Item = {
        "pk": tenant_pk(tenant_id),
        "sk": send_sk(template_id, email_id),
        "email_id": email_id,
        "version": version,
    }
    if variant is not None:
        item["variant"] = variant
    return item


class TemplateStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    @staticmethod
    def _template(item: Item) -> Template:
        meta = {k: v for k, v in item.items() if k not in ("pk", "sk", "doc", "version")}
        return Template.model_validate({**meta, **json.loads(item["doc"]), "version": int(item["version"])})

    @staticmethod
    def _version(item: Item) -> TemplateVersion:
        meta = {k: v for k, v in item.items() if k not in ("pk", "sk", "doc", "version")}
        return TemplateVersion.model_validate(
            {**meta, **json.loads(item["doc"]), "version": int(item["version"])}
        )

    def save(
        self, tenant_id: str, template: Template, saved: TemplateVersion, *, expected: int | None
    ) -> None:
        """The head at `template.version` and its version item in one transaction.

        `expected` None: a new template; else the version the caller read (Conflict
        `version_conflict` when someone saved in between, or the template was deleted)."""
        head: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": template_sk(template.template_id),
            **_meta(template),
            "doc": _doc(template),
            "version": template.version,
        }
        stale = Conflict("the template was changed by someone else", code="version_conflict")
        if expected is None:
            put: dict[str, Any] = {"Item": head, "ConditionExpression": "attribute_not_exists(pk)"}
        else:
            put = {
                "Item": head,
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": expected},
            }
        version_item: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": version_sk(saved.template_id, saved.version),
            **_meta(saved),
            "doc": _doc(saved),
            "version": saved.version,
        }
        self.transact(
            [
                Write({"Put": put}, lambda: stale),
                Write(
                    {"Put": {"Item": version_item, "ConditionExpression": "attribute_not_exists(pk)"}},
                    lambda: stale,
                ),
            ]
        )

    def get_template(self, tenant_id: str, template_id: str) -> Template | None:
        item = self.get(tenant_pk(tenant_id), template_sk(template_id), consistent=True)
        return None if item is None else self._template(item)

    def require_template(self, tenant_id: str, template_id: str) -> Template:
        template = self.get_template(tenant_id, template_id)
        if template is None:
            raise NotFound("no such template", code="template_not_found")
        return template

    def delete_template(self, tenant_id: str, template_id: str) -> None:
        """The head only: versions stay, so emails sent with one still name what they used."""
        self.delete(tenant_pk(tenant_id), template_sk(template_id))

    def list_templates(
        self, tenant_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Template], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("TEMPLATE#"),
            cursor=cursor,
            limit=limit,
        )
        return [self._template(item) for item in items], next_cursor

    def get_version(self, tenant_id: str, template_id: str, version: int) -> TemplateVersion | None:
        item = self.get(tenant_pk(tenant_id), version_sk(template_id, version))
        return None if item is None else self._version(item)

    def list_versions(
        self, tenant_id: str, template_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[TemplateVersion], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(f"TPLVER#{template_id}#"),
            cursor=cursor,
            limit=limit,
        )
        return [self._version(item) for item in items], next_cursor

    def record_send(
        self, tenant_id: str, template_id: str, email_id: str, *, version: int, variant: str | None
    ) -> None:
        """Which version and variant an email was rendered from (idempotent: same key, same values)."""
        self.table.put_item(Item=_send_item(tenant_id, template_id, email_id, version, variant))

    def record_sends(self, tenant_id: str, sends: Sequence[tuple[str, str, int, str | None]]) -> None:
        """`record_send` for each (template id, email id, version, variant), 25 a BatchWriteItem
        (deterministic keys: a replay writes the same items again)."""
        batch_put(
            self.client,
            self.table_name,
            [_send_item(tenant_id, t, e, version, variant) for t, e, version, variant in sends],
        )

    def sends(self, tenant_id: str, template_id: str, *, limit: int) -> Iterator[Item]:
        """At most `limit` send records of the template (`email_id`, `version`, `variant`)."""
        from itertools import islice

        yield from islice(
            self.query_all(
                KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
                & Key("sk").begins_with(f"TPLSEND#{template_id}#")
            ),
            limit,
        )
