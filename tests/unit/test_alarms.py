"""template.yaml's alarms and dashboard (issue 20 point 5): every dead-letter queue and every
function has its alarms, every alarm notifies the AlarmTopicArn parameter (none when it is
empty), and the custom-metric alarms read the metrics `mailbridge.opsmetrics` emits, in the
namespace the functions emit them to. A new queue or function without alarms fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.template import load_yaml
from mailbridge import opsmetrics

ROOT = Path(__file__).resolve().parents[2]
DOC = load_yaml(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = DOC["Resources"]


def _of_type(kind: str) -> list[str]:
    return sorted(lid for lid, r in RESOURCES.items() if r["Type"] == kind)


ALARMS = {lid: RESOURCES[lid]["Properties"] for lid in _of_type("AWS::CloudWatch::Alarm")}
QUEUES = _of_type("AWS::SQS::Queue")
FUNCTIONS = _of_type("AWS::Serverless::Function")
NAMESPACE = DOC["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]


def _dead_letter_queues() -> list[str]:
    """Every queue some other queue redrives to or some event source sends its failures to."""
    text = json.dumps(RESOURCES)
    targets = set(re.findall(r'"deadLetterTargetArn": \{"Fn::GetAtt": \["(\w+)"', text))
    targets |= set(re.findall(r'"Destination": \{"Fn::GetAtt": \["(\w+)"', text))
    return sorted(t for t in targets if t in QUEUES)


def _alarms_on(namespace: str, metric: str, dimension: str) -> dict[str, Any]:
    """Logical id (or name) of the resource each alarm on `namespace`/`metric` watches -> alarm."""
    watched: dict[str, Any] = {}
    for props in ALARMS.values():
        if props.get("Namespace") != namespace or props.get("MetricName") != metric:
            continue
        [dim] = props["Dimensions"]
        assert dim["Name"] == dimension
        value = dim["Value"]
        target = value["Fn::GetAtt"][0] if "Fn::GetAtt" in value else value["Ref"]
        watched[target] = props
    return watched


def test_the_template_has_dead_letter_queues_and_functions_to_watch() -> None:
    # (guards the checks below against a template read wrongly: they would pass on nothing)
    assert len(_dead_letter_queues()) >= 10
    assert len(FUNCTIONS) >= 15
    assert set(_dead_letter_queues()) == {q for q in QUEUES if q.endswith("DeadLetterQueue")}


def test_every_dead_letter_queue_alarms_as_soon_as_one_message_is_visible() -> None:
    watched = _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")

    assert sorted(watched) == _dead_letter_queues()
    for props in watched.values():
        assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == (
            "Maximum",
            "GreaterThanThreshold",
            0,
        )


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(metric: str) -> None:
    watched = _alarms_on("AWS/Lambda", metric, "FunctionName")

    assert sorted(watched) == FUNCTIONS
    assert all(p["Statistic"] == "Sum" and p["Threshold"] == 0 for p in watched.values())


def _insights_alarms() -> dict[str, str]:
    """Alarm logical id -> its Metrics Insights query."""
    return {
        lid: props["Metrics"][0]["Expression"]
        for lid, props in ALARMS.items()
        if "Metrics" in props and props["Metrics"][0]["Expression"].startswith("SELECT")
    }


def test_the_custom_metric_alarms_read_what_the_code_emits_per_provider() -> None:
    # Given each Metrics Insights alarm's query, read as (function, metric, namespace, provider)
    read = set()
    for query in _insights_alarms().values():
        match = re.fullmatch(r"SELECT (MAX|SUM)\((\w+)\) FROM (\w+)(?: WHERE provider = '(\w+)')?", query)
        assert match, query
        function, metric, namespace, provider = match.groups()
        assert namespace == NAMESPACE  # the namespace the functions emit to (Globals)
        assert metric in opsmetrics.OPERATIONAL_METRICS
        assert function == ("MAX" if metric == opsmetrics.SYNC_LAG else "SUM")  # lag is a level, not a count
        assert provider is None or provider in opsmetrics.PROVIDERS
        read.add((metric, provider))

    # Then sync lag is watched per mail provider, rejects and quota per push/quota provider (the
    # mailboxes' and the CRMs'), and refresh failures over every provider
    assert read == {
        (opsmetrics.SYNC_LAG, "gmail"),
        (opsmetrics.SYNC_LAG, "graph"),
        (opsmetrics.SYNC_LAG, "imap"),
        (opsmetrics.WEBHOOK_REJECTED, "gmail"),
        (opsmetrics.WEBHOOK_REJECTED, "graph"),
        (opsmetrics.WEBHOOK_REJECTED, "salesforce"),
        (opsmetrics.WEBHOOK_REJECTED, "hubspot"),
        (opsmetrics.TOKEN_REFRESH_FAILED, None),
        (opsmetrics.PROVIDER_THROTTLED, "gmail"),
        (opsmetrics.PROVIDER_THROTTLED, "graph"),
        (opsmetrics.PROVIDER_THROTTLED, "salesforce"),
        (opsmetrics.PROVIDER_THROTTLED, "hubspot"),
    }


def test_every_alarm_notifies_the_topic_parameter_only_when_it_is_given() -> None:
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert DOC["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    assert DOC["Parameters"]["AlarmTopicArn"]["Default"] == ""
    for lid, props in ALARMS.items():
        assert props["AlarmActions"] == expected, lid
        assert props["OKActions"] == expected, lid
        assert "runbook" in props["AlarmDescription"], lid


def _readme_runbook_sections() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    runbook = readme.split("## Runbook", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^### (.+)$", runbook, re.M))


def test_every_alarm_names_a_runbook_section_that_exists() -> None:
    sections = _readme_runbook_sections()
    for lid, props in ALARMS.items():
        match = re.search(r"README runbook: ([^)]+)\)", props["AlarmDescription"])
        assert match, lid
        assert match.group(1) in sections, (lid, match.group(1))


def test_the_dashboard_shows_every_dead_letter_queue_function_and_custom_metric() -> None:
    [dashboard] = _of_type("AWS::CloudWatch::Dashboard")
    body = RESOURCES[dashboard]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body)["widgets"]
    text = json.dumps(widgets)

    for queue in _dead_letter_queues():
        assert f"${{{queue}.QueueName}}" in text
    for function in FUNCTIONS:
        assert f'"${{{function}}}"' in text
    for metric in opsmetrics.OPERATIONAL_METRICS:
        assert f"({metric}) FROM {NAMESPACE}" in text
