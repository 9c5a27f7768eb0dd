"""The audit log's resources in template.yaml are append-only by construction (issue 19 point 4):
only PutItem and Query on the table, for one function; the archive bucket is Object Lock
COMPLIANCE with the retention parameter; the stream feeds the archive function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = load_yaml(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = DOC["Resources"]


def _names_table(value: Any) -> bool:
    return "AuditTable" in json.dumps(value)


def test_no_function_may_change_or_delete_an_audit_entry() -> None:
    # Given every function's policies
    grants: dict[str, list[Any]] = {}
    for lid, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies") or []:
            if _names_table(policy):
                grants.setdefault(lid, []).append(policy)
    # When the ones that name the audit table are read
    actions = {
        lid: sorted(
            action
            for policy in policies
            for statement in policy.get("Statement", [])
            if _names_table(statement)
            for action in statement["Action"]
        )
        for lid, policies in grants.items()
    }
    templates = [
        key for policies in grants.values() for policy in policies for key in policy if key != "Statement"
    ]
    # Then only the api function may write (PutItem) and read (Query), and the oauth function
    # append its callbacks' entries, through no policy template
    assert actions == {
        "ApiFunction": ["dynamodb:PutItem", "dynamodb:Query"],
        "OAuthFunction": ["dynamodb:PutItem"],
    }
    assert templates == []


def test_the_archive_bucket_locks_every_object_in_compliance_mode_for_the_retention() -> None:
    # Given the audit bucket
    props = RESOURCES["AuditBucket"]["Properties"]
    # When its lock is read
    rule = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    # Then Object Lock is on, COMPLIANCE, for the AuditRetentionDays parameter, with versioning
    assert props["ObjectLockEnabled"] is True
    assert rule == {"Mode": "COMPLIANCE", "Days": {"Ref": "AuditRetentionDays"}}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert DOC["Parameters"]["AuditRetentionDays"]["Default"] == 365


def test_the_table_stream_feeds_the_archive_function_and_nothing_else() -> None:
    # Given the audit table and the functions' events
    table = RESOURCES["AuditTable"]["Properties"]
    events = [
        (lid, event)
        for lid, resource in RESOURCES.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "DynamoDB"
    ]
    # When they are read
    # Then the stream carries new images to the archive function, with partial failures reported
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert [lid for lid, _ in events] == ["AuditArchiveFunction"]
    properties = events[0][1]["Properties"]
    assert properties["Stream"] == {"Fn::GetAtt": ["AuditTable", "StreamArn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in properties["DestinationConfig"]
