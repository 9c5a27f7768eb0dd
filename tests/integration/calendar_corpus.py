"""The ICS corpus through POST /calendar/import (api handler on moto), in shards: every one of the
258 real .ics files of the shared corpus, never a 5xx; each file imports with a result per event
(skipped ones with a reason code) or is refused as a whole with a 4xx and a code; importing it
again changes nothing. The test files `test_calendar_corpus_{n}.py` each run one shard, so
`make test`'s workers (one file each) share the work: it is the suite's longest single test
otherwise. Shards are balanced by measured cost, not by file count: one file of 677 events
costs more than the other files of its shard together."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

from tests.fixtures import moto_transactions
from tests.fixtures.aws import Stack
from tests.integration.calendar_client import Calendar, Invoke
from tests.unit.calendar.test_ics_corpus import FILES, ICS, NO_CORPUS

SHARDS = 4
REFUSALS = {"not_icalendar", "too_deep", "too_many_events"}
# CPU seconds one file costs here (two imports, then emptying the table), measured with
# `time.process_time()` around each file (moto with tests/fixtures/moto_transactions.py), for
# the files over half a second; every other file costs about `TYPICAL_COST`.
COSTS = {
    "python-recurring-ical-events/issue_173_only_modifications_error.ics": 22.9,
    "python-recurring-ical-events/Germany.ics": 7.0,
    "python-recurring-ical-events/daylight_saving_time.ics": 3.3,
    "python-recurring-ical-events/machbar_16_feb_2019.ics": 2.6,
    "python-recurring-ical-events/Germany_Holidays.ics": 1.7,
    "python-recurring-ical-events/fablab_cottbus.ics": 1.1,
}
TYPICAL_COST = 0.12


def shard_files(shard: int, names: list[str]) -> list[str]:
    """The files of `names` (paths relative to the corpus) that `shard` imports: each file goes,
    costliest first, to the shard with the least cost so far (ties: the lowest shard), so that
    every file is in exactly one shard and the shards cost about the same."""
    load = [0.0] * SHARDS
    owner: dict[str, int] = {}
    for name in sorted(names, key=lambda n: (-COSTS.get(n, TYPICAL_COST), n)):
        owner[name] = min(range(SHARDS), key=lambda s: (load[s], s))
        load[owner[name]] += COSTS.get(name, TYPICAL_COST)
    return [name for name in names if owner[name] == shard]


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
    """Import each file of `shard` twice; assert what the module docstring says."""
    if ICS is None:
        pytest.skip(NO_CORPUS)
    with pytest.MonkeyPatch.context() as patch:
        # One file of the corpus holds 677 events: with moto's own rollback copy (the whole
        # table, per action of every transaction) it alone cost 110 CPU seconds.
        moto_transactions.install(partial(patch.setattr, raising=False))
        _check_shard(shard, invoke_api, stack)


def _check_shard(shard: int, invoke_api: Invoke, stack: Stack) -> None:
    assert ICS is not None
    table = stack.table("CalendarTable")
    problems: list[tuple[str, Any]] = []
    imported = skipped = refused = 0
    names = [str(path.relative_to(ICS)) for path in FILES]
    mine = set(shard_files(shard, names))
    for index, path in enumerate(FILES):
        name = names[index]
        if name not in mine:
            continue
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
