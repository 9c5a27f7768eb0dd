"""Issue 14 acceptance for the assist panel through the local runner's HTTP API: next best actions
on a stale deal suggest a task, and applying the suggestion creates it (read back with
GET /crm/tasks/{task_id})."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from local.runner import Runner
from tests.e2e.conftest import call


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def test_nba_on_a_stale_deal_suggests_a_task_and_apply_creates_it(runner: Runner) -> None:
    admin = runner.token(tenant="assist-e2e", role="admin", sub="alice")
    member = runner.token(tenant="assist-e2e", role="member", sub="bob")
    status, flags = call(runner, "PUT", "/features", admin, {"ai": True})
    assert status == 200, flags
    # Given a contact and a deal nobody has touched for three weeks
    status, contact = call(
        runner,
        "POST",
        "/crm/contacts",
        member,
        {"name": "Kim Lee", "emails": [{"address": "kim@northwind.example"}]},
    )
    assert status == 201, contact
    status, deal = call(
        runner,
        "POST",
        "/crm/deals",
        member,
        {"name": "Northwind: 50 seats", "contact_ids": [contact["contact_id"]]},
    )
    assert status == 201, deal
    three_weeks_ago = (datetime.now(UTC) - timedelta(days=21)).isoformat()
    runner.boto3_client("dynamodb").update_item(
        TableName=runner.physical_name("CrmTable"),
        Key={"pk": {"S": "TENANT#assist-e2e"}, "sk": {"S": f"DEAL#{deal['deal_id']}"}},
        UpdateExpression="SET updated_at = :t, created_at = :t",
        ExpressionAttributeValues={":t": {"S": three_weeks_ago}},
    )
    # When the assist panel asks for the deal's next best actions
    status, answer = call(runner, "POST", "/ai/assist/nba", member, {"deal_id": deal["deal_id"]})
    assert status == 200, answer
    # Then a task is suggested for the deal, with the reason
    [action] = [a for a in answer["actions"] if a["type"] == "create_task"]
    assert action["payload"]["deal_id"] == deal["deal_id"]
    assert "21 days" in action["reason"]
    # When the suggestion is applied
    status, applied = call(runner, "POST", "/ai/assist/apply", member, {"action": action})
    assert status == 200, applied
    # Then the task exists, open and assigned to the caller
    status, task = call(runner, "GET", f"/crm/tasks/{applied['result_id']}", member)
    assert status == 200, task
    assert (task["title"], task["deal_id"], task["status"], task["assignee"]) == (
        "Follow up on Northwind: 50 seats",
        deal["deal_id"],
        "open",
        "bob",
    )
