"""Automation rules through the api function on moto: versions, concurrency, validation on save,
cron schedules, the evaluator, templates, the save limit and the feature flag."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from mailbridge.automations.scheduling import schedule_name
from mailbridge.automations.wiring import automation_deps
from mailbridge.store.automations import AutomationStore
from tests.events import load_event
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT = "acme"
ACCOUNT = "acc_5f0c1d2e3a4b5c6d7e8f"
WELCOME: dict[str, Any] = json.loads(load_event("api/automations-create.json")["body"])


class Api:
    def __init__(self, invoke_api: Invoke) -> None:
        self.invoke_api = invoke_api

    def call(
        self,
        name: str,
        status: int,
        *,
        tenant: str = TENANT,
        role: str = "admin",
        path: dict[str, str] | None = None,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        event = load_event(f"api/{name}.json", tenant=tenant, role=role, body=body, query=query)
        if path is not None:
            raw = event["routeKey"].split(" ", 1)[1]
            for key, value in path.items():
                raw = raw.replace("{" + key + "}", value)
            event["pathParameters"] = dict(path)
            event["rawPath"] = event["requestContext"]["http"]["path"] = raw
        if query is None and event["requestContext"]["http"]["method"] == "GET":
            event.pop("queryStringParameters", None)
            event["rawQueryString"] = ""
        response = self.invoke_api(event)
        assert response["statusCode"] == status, response
        self.last = response
        return json.loads(response["body"]) if response.get("body") else None

    def switch_on(self, tenant: str = TENANT) -> None:
        self.call("put-features", 200, tenant=tenant, role="admin", body={"automations": True})

    def create(self, body: dict[str, Any] | None = None, status: int = 201, **kwargs: Any) -> Any:
        return self.call("automations-create", status, body=body or WELCOME, **kwargs)


@pytest.fixture
def api(invoke_api: Invoke) -> Api:
    client = Api(invoke_api)
    client.switch_on()
    return client


def _store(stack: Stack) -> AutomationStore:
    return AutomationStore(stack.deployed.tables["AutomationsTable"])


# ------------------------------------------------------------------------------ rules


def test_a_seed_rule_is_saved_with_its_conditions_compiled_to_json_logic(api: Api) -> None:
    # Given the seed's welcome rule with its simple condition list
    # When it is created
    rule = api.create()
    # Then it is version 1, enabled, with the list kept and its JSON-Logic beside it
    assert rule["rule_id"].startswith("au_")
    assert rule["version"] == 1
    assert rule["enabled"] is True
    assert rule["conditions"] == WELCOME["conditions"]
    assert rule["logic"] == {"in": ["new-lead", {"var": "contact.tags"}]}
    assert rule["actions"] == WELCOME["actions"]
    # And reading it back gives the same rule
    assert api.call("automations-get", 200, role="viewer", path={"rule_id": rule["rule_id"]}) == rule


def test_every_save_is_a_new_immutable_version_with_optimistic_concurrency(api: Api) -> None:
    # Given a rule at version 1
    rule = api.create()
    path = {"rule_id": rule["rule_id"]}
    # When it is saved again with the version read, under a new name and with JSON-Logic
    changed = {**WELCOME, "name": "Welcome v2", "conditions": None, "logic": {"==": [1, 1]}, "version": 1}
    saved = api.call("automations-put", 200, path=path, body=changed)
    # Then it is version 2
    assert (saved["version"], saved["name"], saved["logic"]) == (2, "Welcome v2", {"==": [1, 1]})
    # And a save with the stale version is refused
    stale = api.call("automations-put", 409, path=path, body={**changed, "name": "lost"})
    assert stale["error"]["code"] == "version_conflict"
    # And both versions are kept, newest first, the first one unchanged
    versions = api.call("automations-versions", 200, role="viewer", path=path)["items"]
    assert [(v["version"], v["name"]) for v in versions] == [(2, "Welcome v2"), (1, "Welcome New Contact")]
    first = api.call("automations-get-version", 200, role="viewer", path={**path, "version": "1"})
    assert first["logic"] == {"in": ["new-lead", {"var": "contact.tags"}]}
    missing = api.call("automations-get-version", 404, role="viewer", path={**path, "version": "3"})
    assert missing["error"]["code"] == "version_not_found"


def test_a_version_beyond_dynamodbs_range_is_a_422_naming_it_not_a_conflict(api: Api) -> None:
    # Given a rule at version 1
    path = {"rule_id": api.create()["rule_id"]}
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}
    for name, body in (
        ("automations-put", {**WELCOME, "version": 10**41}),
        ("automations-replay", {**window, "version": 10**41}),
    ):
        # When a save or a replay names a version of 42 digits (no DynamoDB number holds it)
        answer = api.call(name, 422, path=path, body=body)
        # Then 422 naming `version` (it was a 409 version_conflict and a 404 version_not_found)
        assert answer["error"]["code"] == "validation_error", name
        assert [d["loc"][-1] for d in answer["error"]["details"]] == ["version"], name


def test_line_breaks_in_a_cron_its_time_zone_or_a_queue_url_are_a_422_naming_the_field(api: Api) -> None:
    # Given a rule at version 1
    path = {"rule_id": api.create()["rule_id"]}
    cron = {"cron": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Berlin"}
    queue = {"name": "leads", "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/leads"}
    for value in ("\r\n", "\x00", "\u2028"):  # inside the value (outer white space is trimmed)
        cases = [
            (
                "automations-create",
                None,
                {**WELCOME, "trigger": {**cron, "cron": f"cron(0 9 ? *{value} MON-FRI *)"}},
                "cron",
            ),
            (
                "automations-put",
                path,
                {**WELCOME, "trigger": {**cron, "timezone": f"Europe/{value}Berlin"}, "version": 9},
                "timezone",
            ),
            (
                "automations-register-queue",
                None,
                {**queue, "queue_url": queue["queue_url"] + value + "x"},
                "queue_url",
            ),
        ]
        for name, where, body, field in cases:
            # When the value carries a line break, NUL or U+2028
            answer = api.call(name, 422, role="admin", path=where, body=body)
            # Then 422 naming the field, before the service reads it (it was a 400 invalid_cron /
            # invalid_timezone / invalid_queue_url, and a 409 version_conflict on a stale PUT)
            assert answer["error"]["code"] == "validation_error", (name, repr(value))
            assert field in {d["loc"][-1] for d in answer["error"]["details"]}, (name, repr(value))


def test_rules_are_listed_and_deleted(api: Api) -> None:
    # Given two rules
    first, second = api.create(), api.create({**WELCOME, "name": "Second"})
    # When the list is read
    listed = api.call("automations-list", 200, role="viewer", query={"limit": "10"})["items"]
    # Then both are there
    assert {r["rule_id"] for r in listed} == {first["rule_id"], second["rule_id"]}
    # When one is deleted
    api.call("automations-delete", 200, path={"rule_id": first["rule_id"]})
    # Then it is gone
    gone = api.call("automations-get", 404, role="viewer", path={"rule_id": first["rule_id"]})
    assert gone["error"]["code"] == "automation_not_found"
    listed = api.call("automations-list", 200, role="viewer", query={"limit": "10"})["items"]
    assert [r["rule_id"] for r in listed] == [second["rule_id"]]


def test_enable_and_disable_change_which_rules_an_event_triggers(api: Api, stack: Stack) -> None:
    # Given an enabled rule on contact.created
    rule = api.create()
    path = {"rule_id": rule["rule_id"]}
    store = _store(stack)
    assert [r.rule_id for r in store.rules_for_event(TENANT, "contact.created")] == [rule["rule_id"]]
    # When it is disabled
    off = api.call("automations-disable", 200, path=path)
    # Then it no longer triggers, and no new version was made
    assert (off["enabled"], off["version"]) == (False, 1)
    assert store.rules_for_event(TENANT, "contact.created") == []
    # When it is enabled again it triggers again
    on = api.call("automations-enable", 200, path=path)
    assert on["enabled"] is True
    assert [r.rule_id for r in store.rules_for_event(TENANT, "contact.created")] == [rule["rule_id"]]
    assert store.rules_for_event(TENANT, "deal.stage_changed") == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            {"actions": [{"type": "email.send", "account_id": ACCOUNT, "to": [], "text": "x"}]},
            "invalid_action",
        ),
        ({"actions": [{"type": "ai.generate", "task": "poem"}]}, "invalid_action"),
        ({"actions": [{"type": "nope"}]}, "invalid_action"),
        (
            {"conditions": [{"field": "contact.tags", "operator": "resembles", "value": 1}]},
            "unknown_condition_operator",
        ),
        ({"conditions": None, "logic": {"eval": ["1"]}}, "unknown_operator"),
        ({"conditions": None, "logic": {"==": [1]}}, "invalid_logic"),
        ({"trigger": {"cron": "cron(0 9 * * MON *)", "timezone": "UTC"}}, "invalid_cron"),
        ({"trigger": {"cron": "cron(0 9 ? * MON *)", "timezone": "Mars/Olympus"}}, "invalid_timezone"),
        ({"trigger": {"cron": "cron(0 9 1 1 ? 1999)", "timezone": "UTC"}}, "cron_never_fires"),
    ],
)
def test_a_rule_that_cannot_run_is_refused_on_save_with_a_code(
    api: Api, change: dict[str, Any], code: str
) -> None:
    # Given a rule with one broken part
    # When it is saved
    answer = api.create({**WELCOME, **change}, 400)
    # Then the answer names what is wrong, and nothing was stored
    assert answer["error"]["code"] == code
    assert api.call("automations-list", 200, role="viewer", query={"limit": "10"})["items"] == []


def _rule_schedules(scheduler: Any) -> list[str]:
    return [s["Name"] for s in scheduler.list_schedules()["Schedules"] if s["Name"].startswith("au-")]


def test_a_cron_rule_has_one_schedule_that_follows_the_rule(api: Api, stack: Stack) -> None:
    # Given a cron rule in Berlin time
    body = {**WELCOME, "trigger": {"cron": "cron(0 9 ? * MON *)", "timezone": "Europe/Berlin"}}
    body["actions"] = [{"type": "analytics.track", "metric": "digest.sent"}]
    rule = api.create(body)
    scheduler: Any = boto3.client("scheduler")
    name = schedule_name(TENANT, rule["rule_id"])
    # Then its schedule puts the rule on the AutomationsQueue at the cron's times
    schedule = scheduler.get_schedule(Name=name)
    assert rule["schedule_name"] == name
    assert schedule["ScheduleExpression"] == "cron(0 9 ? * MON *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["Target"]["Arn"] == stack.env("ApiFunction")["AUTOMATIONS_QUEUE_ARN"]
    assert json.loads(schedule["Target"]["Input"]) == {
        "kind": "cron",
        "tenant_id": TENANT,
        "rule_id": rule["rule_id"],
    }
    path = {"rule_id": rule["rule_id"]}
    # When the rule is changed, the schedule changes with it
    api.call(
        "automations-put",
        200,
        path=path,
        body={**body, "trigger": {"cron": "cron(30 8 ? * FRI *)"}, "version": 1},
    )
    schedule = scheduler.get_schedule(Name=name)
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        "cron(30 8 ? * FRI *)",
        "UTC",
    )
    # When it is disabled, the schedule is disabled
    api.call("automations-disable", 200, path=path)
    assert scheduler.get_schedule(Name=name)["State"] == "DISABLED"
    # When it becomes an event rule, the schedule is deleted
    api.call(
        "automations-put",
        200,
        path=path,
        body={**body, "trigger": {"event": "contact.created"}, "version": 2},
    )
    assert _rule_schedules(scheduler) == []
    # When a cron rule is deleted, its schedule goes with it
    other = api.create(body)
    api.call("automations-delete", 200, path={"rule_id": other["rule_id"]})
    assert _rule_schedules(scheduler) == []


# ------------------------------------------------------------------------------ builder


def test_the_evaluator_answers_the_rules_value_or_a_coded_400(api: Api) -> None:
    # Given the sample evaluation
    # When it is evaluated
    answer = api.call("automations-evaluate", 200, role="viewer")
    # Then the result is the rule's value for the data
    assert answer == {"result": True}
    assert api.call(
        "automations-evaluate", 200, role="viewer", body={"logic": {"+": [1, {"var": "n"}]}, "data": {"n": 2}}
    ) == {"result": 3}
    # And a rule the engine refuses is a 400 with a code, never a 500
    for logic, code in (({"eval": "x"}, "unknown_operator"), ({"a": 1, "b": 2}, "invalid_logic")):
        refused = api.call("automations-evaluate", 400, role="viewer", body={"logic": logic, "data": {}})
        assert refused["error"]["code"] == code


def test_the_four_templates_are_offered_and_each_saves_once_its_ids_are_filled(api: Api) -> None:
    # Given the templates
    items = api.call("automations-templates", 200, role="viewer")["items"]
    # Then there are the seed's four, the welcome rule first
    assert len(items) == 4
    assert items[0]["name"] == "Welcome New Contact"
    assert items[0]["rule"]["trigger"] == {"event": "contact.created"}
    # And each one saves as a rule once its account id is filled in
    for item in items:
        body = json.loads(json.dumps(item["rule"]).replace("acc_00000000000000000000", ACCOUNT))
        api.create(body)


# ------------------------------------------------------------------------------ limits and access


def test_the_21st_save_in_a_minute_is_rate_limited(api: Api) -> None:
    # Given a clock that stands still in one minute
    automation_deps().now = lambda: datetime(2030, 1, 1, 9, 0, 45, tzinfo=UTC)
    rule = api.create()
    for _ in range(19):
        api.call(
            "automations-put", 200, path={"rule_id": rule["rule_id"]}, body={**WELCOME, "version": _ + 1}
        )
    # When the 21st save of the minute comes
    refused = api.create(status=429)
    # Then it is refused with a code and a Retry-After until the next minute
    assert refused["error"]["code"] == "rate_limited"
    assert api.last["headers"]["Retry-After"] == "15"
    # And in the next minute saving works again
    automation_deps().now = lambda: datetime(2030, 1, 1, 9, 1, 0, tzinfo=UTC)
    api.create()


def test_the_flag_off_hides_every_route(invoke_api: Invoke) -> None:
    # Given a tenant that did not switch automations on
    api = Api(invoke_api)
    # When it calls the routes
    # Then they answer as if they did not exist
    assert api.create(status=404)["error"]["code"] == "feature_disabled"
    assert api.call("automations-templates", 404, role="viewer")["error"]["code"] == "feature_disabled"


def test_viewers_read_and_other_tenants_see_nothing(api: Api) -> None:
    # Given a rule of acme
    rule = api.create()
    path = {"rule_id": rule["rule_id"]}
    # When a viewer tries to create or change one
    # Then it is refused
    assert api.create(status=403, role="viewer")["error"]["code"] == "role_required"
    api.call("automations-disable", 403, role="viewer", path=path)
    # And another tenant cannot see it
    api.switch_on("globex")
    assert (
        api.call("automations-get", 404, tenant="globex", path=path)["error"]["code"]
        == "automation_not_found"
    )
    assert api.call("automations-list", 200, tenant="globex", query={"limit": "10"})["items"] == []
    # And a malformed id is a 404, not a 500
    api.call("automations-get", 404, path={"rule_id": "au_../../x"})
