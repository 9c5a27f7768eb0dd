"""EventBridge Scheduler cron triggers: validation, fire times (with time zones and DST), and the
Scheduler arguments; plus gorhill/cronexpr's vectors where its syntax overlaps AWS's."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailbridge.automations.cron import parse_cron, scheduler_arguments, validate_trigger
from mailbridge.automations.errors import CronError

NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


def _times(expression: str, after: datetime = NOW, count: int = 3, zone: str = "UTC") -> list[str]:
    return [t.isoformat() for t in parse_cron(expression).fire_times(after, count, zone)]


def test_aws_documented_examples_fire_when_the_docs_say() -> None:
    # docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based examples
    assert _times("cron(0 10 * * ? *)", count=2) == ["2026-03-28T10:00:00+00:00", "2026-03-29T10:00:00+00:00"]
    assert _times("cron(15 12 * * ? *)", count=1) == ["2026-03-27T12:15:00+00:00"]
    assert _times("cron(0 18 ? * MON-FRI *)", count=2) == [
        "2026-03-27T18:00:00+00:00",
        "2026-03-30T18:00:00+00:00",
    ]
    assert _times("cron(0 8 1 * ? *)", count=1) == ["2026-04-01T08:00:00+00:00"]
    assert _times("cron(0/10 * ? * MON-FRI *)", count=2) == [
        "2026-03-27T12:10:00+00:00",
        "2026-03-27T12:20:00+00:00",
    ]
    assert _times(
        "cron(0/5 8-17 ? * MON-FRI *)", after=datetime(2026, 3, 27, 17, 56, tzinfo=UTC), count=1
    ) == ["2026-03-30T08:00:00+00:00"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 9 L * ? *)", ["2026-03-31", "2026-04-30", "2026-05-31"]),
        ("cron(0 9 LW * ? *)", ["2026-03-31", "2026-04-30", "2026-05-29"]),  # May 31 is a Sunday
        ("cron(0 9 15W * ? *)", ["2026-04-15", "2026-05-15", "2026-06-15"]),
        ("cron(0 9 1W * ? *)", ["2026-04-01", "2026-05-01", "2026-06-01"]),
        ("cron(0 9 ? * 6L *)", ["2026-03-27", "2026-04-24", "2026-05-29"]),  # last Friday
        ("cron(0 9 ? * FRIL *)", ["2026-03-27", "2026-04-24", "2026-05-29"]),
        ("cron(0 9 ? * 2#1 *)", ["2026-04-06", "2026-05-04", "2026-06-01"]),  # first Monday
        ("cron(0 9 ? * L *)", ["2026-03-28", "2026-04-04", "2026-04-11"]),  # Saturdays
        ("cron(0 9 29 2 ? *)", ["2028-02-29", "2032-02-29", "2036-02-29"]),
        ("cron(0 9 1 1 ? 2027/2)", ["2027-01-01", "2029-01-01", "2031-01-01"]),
        ("0 9 ? 1,JUL * 2027", ["2027-01-01", "2027-01-02", "2027-01-03"]),
    ],
)
def test_special_characters(expression: str, expected: list[str]) -> None:
    assert [t[:10] for t in _times(expression, after=datetime(2026, 3, 27, 8, 0, tzinfo=UTC))] == expected


def test_times_are_wall_clock_in_the_time_zone() -> None:
    # 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC from 29 March 2026 (summer time)
    assert _times("cron(0 9 * * ? *)", zone="Europe/Paris") == [
        "2026-03-28T08:00:00+00:00",
        "2026-03-29T07:00:00+00:00",
        "2026-03-30T07:00:00+00:00",
    ]


def test_a_time_skipped_by_spring_forward_does_not_fire_and_a_repeated_one_fires_once() -> None:
    # New York skips 02:00-03:00 on 8 March 2026 and repeats 01:00-02:00 on 1 November 2026
    spring = _times("cron(30 2 * * ? *)", after=datetime(2026, 3, 7, 0, tzinfo=UTC), zone="America/New_York")
    assert spring[:2] == ["2026-03-07T07:30:00+00:00", "2026-03-09T06:30:00+00:00"]
    autumn = _times(
        "cron(30 1 * * ? *)", after=datetime(2026, 10, 31, 12, tzinfo=UTC), zone="America/New_York"
    )
    assert autumn == ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00", "2026-11-03T06:30:00+00:00"]


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 10 * * * *)",  # neither day field is ?
        "cron(0 10 ? * ? *)",  # both are
        "cron(0 10 * *)",  # four fields
        "cron(60 10 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 10 32 * ? *)",
        "cron(0 10 ? * 8 *)",
        "cron(0 10 ? * 0 *)",  # AWS numbers days 1-7
        "cron(0 10 * 13 ? *)",
        "cron(0 10 * * ? 1969)",
        "cron(0 10 * * ? 2200)",
        "cron(0 10 ? * FRI-MON *)",  # ranges go upwards
        "cron(0 10 ? * 2#6 *)",
        "cron(0 10 L-2 * ? *)",
        "cron(0 10 * * ? * *)",  # seven fields (seconds are not AWS)
        "cron(*/0 10 * * ? *)",
        "cron(0 10 ? * MONDAY *)",
        "cron(0 １0 * * ? *)",  # noqa: RUF001 - a full-width digit
        "",
    ],
)
def test_invalid_expressions_are_refused_with_invalid_cron(expression: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert caught.value.code == "invalid_cron"


def test_saving_checks_the_zone_and_that_it_fires_again() -> None:
    assert (
        validate_trigger("cron(0 9 ? * MON *)", "Europe/Paris", now=NOW).expression == "cron(0 9 ? * MON *)"
    )
    for zone in ("Mars/Olympus", "../etc/passwd", "", "Europe/Paris "):
        with pytest.raises(CronError) as caught:
            validate_trigger("cron(0 9 ? * MON *)", zone, now=NOW)
        assert caught.value.code == "invalid_timezone"
    for never in ("cron(0 9 30 2 ? *)", "cron(0 9 * * ? 2025)"):
        with pytest.raises(CronError) as caught:
            validate_trigger(never, "UTC", now=NOW)
        assert caught.value.code == "cron_never_fires"


def test_scheduler_arguments_are_what_create_schedule_takes() -> None:
    assert scheduler_arguments("0 9 ? * mon-fri *", "Europe/Paris") == {
        "ScheduleExpression": "cron(0 9 ? * mon-fri *)",
        "ScheduleExpressionTimezone": "Europe/Paris",
    }


# ------------------------------------------------------------------------------- gorhill vectors

_REPO_ROOT = Path(__file__).resolve().parents[3]
_DOW = {
    "SUNDAY": "SUN",
    "MONDAY": "MON",
    "TUESDAY": "TUE",
    "WEDNESDAY": "WED",
    "THURSDAY": "THU",
    "FRIDAY": "FRI",
    "SATURDAY": "SAT",
}


def _vectors() -> list[Any]:
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    root = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "data"
    path = root / "cron" / "gorhill-cronexpr.vectors.json"
    if not path.is_file():
        return []
    cases = []
    for test in json.loads(path.read_text())["tests"]:
        fields = test["expr"].split()
        if len(fields) != 5:  # 7-field vectors have seconds: AWS has none
            continue
        for case in test["cases"]:
            cases.append(
                pytest.param(
                    fields, test["go_layout"], case["from"], case["next"], id=f"{test['expr']} {case['from']}"
                )
            )
    return cases


def _to_aws(fields: list[str]) -> str:
    """gorhill's 5 fields (dow 0-7, 0 and 7 = Sunday) -> AWS's 6 (dow 1-7 = SUN-SAT, ?, year)."""
    minute, hour, dom, month, dow = fields
    dow = _DOW.get(dow.upper(), dow.upper())
    dow = re.sub(r"^\d|(?<=,)\d|(?<=-)\d", lambda m: str(int(m.group(0)) % 7 + 1), dow)
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom = "?"
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


_GO_LAYOUTS = {"2006-01-02 15:04:05": "%Y-%m-%d %H:%M:%S", "Mon 2006-01-02 15:04": "%a %Y-%m-%d %H:%M"}
VECTORS = _vectors()


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("fields", "layout", "start", "expected"),
    VECTORS or [pytest.param(None, None, None, None, marks=pytest.mark.skip(reason="corpus not found"))],
)
def test_gorhill_cronexpr_vectors(fields: list[str], layout: str, start: str, expected: str) -> None:
    # Given a vector whose syntax AWS shares, rewritten in AWS's day numbering
    after = datetime.strptime(start, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    # When the next fire time is computed
    (got,) = parse_cron(_to_aws(fields)).fire_times(after, 1)
    # Then it is cronexpr's
    assert got == datetime.strptime(expected, _GO_LAYOUTS[layout]).replace(tzinfo=UTC)


def test_the_overlapping_vectors_are_all_there() -> None:
    if not VECTORS:
        pytest.skip("corpus not found")
    assert len(VECTORS) == 47
