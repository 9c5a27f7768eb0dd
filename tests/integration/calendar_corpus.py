"""The ICS corpus through POST /calendar/import (api handler on moto), in shards: every one of the
258 real .ics files of the shared corpus, never a 5xx; each file imports with a result per event
(skipped ones with a reason code) or is refused as a whole with a 4xx and a code; importing it
again changes nothing. The test files `test_calendar_corpus_{n}.py` each run one shard, so
`make test`'s workers (one file each) share the work: it is the suite's longest single test
otherwise (moto copies a table for every transaction action)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.aws import Stack
from tests.integration.calendar_client import Calendar, Invoke
from tests.unit.calendar.test_ics_corpus import FILES, ICS, NO_CORPUS

SHARDS = 4
REFUSALS = {"not_icalendar", "too_deep", "too_many_events"}


def _empty(table: Any) -> None:
    """moto copies a whole table for every action of a transaction: keep the table small."""
    scan: dict[str, Any] = {"ProjectionExpression": "pk, sk"}
    while True:
        page = table.scan(**scan)
        with table.batch_writer() as batch:
            for item in page["Items"]:
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
        if "LastEvaluatedKey" not in page:
            return
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def check_shard(shard: int, invoke_api: Invoke, stack: Stack) -> None:
    """Import every `SHARDS`-th file from `shard` twice; assert what the module docstring says."""
    if ICS is None:
        pytest.skip(NO_CORPUS)
    table = stack.table("CalendarTable")
    problems: list[tuple[str, Any]] = []
    imported = skipped = refused = 0
    for index, path in enumerate(FILES):
        if index % SHARDS != shard:
            continue
        name = str(path.relative_to(ICS))
        # One tenant per file: the tenant's import rate limit (5 a minute) is not what is tested
        cal = Calendar(invoke_api, tenant=f"corpus{index}")
        data = path.read_bytes()
        first = cal.raw("import", raw_body=data, content_type="text/calendar")
        answer = json.loads(first["body"])
        if first["statusCode"] == 400 and answer["error"]["code"] in REFUSALS:
            refused += 1
            continue
        if first["statusCode"] != 200:
            problems.append((name, answer))
            continue
        if any(e["result"] == "skipped" and not e["reason"] for e in answer["events"]):
            problems.append((name, "a skip without a reason"))
        imported += answer["imported"]
        skipped += answer["skipped"]
        again = json.loads(cal.raw("import", raw_body=data, content_type="text/calendar")["body"])
        if again["imported"] or again["updated"]:
            problems.append((name, [e for e in again["events"] if e["result"] in {"imported", "updated"}]))
        _empty(table)
    assert problems == []
    # Every shard imports events (1,081 over all shards today, unevenly: a few files hold most)
    assert imported > 0
    assert refused < 25
    print(f"corpus shard {shard}: {imported} imported, {skipped} skipped with a reason, {refused} refused")
