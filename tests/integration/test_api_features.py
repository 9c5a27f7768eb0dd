"""The api function end to end in-process: sample events -> handler -> DynamoDB (moto)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.events import load_event
from tests.fixtures.aws import BusReader, Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def test_health_needs_no_token(invoke_api: Invoke) -> None:
    response = invoke_api(load_event("api/get-health.json"))
    assert response["statusCode"] == 200
    assert body(response)["status"] == "ok"


def test_me_returns_the_callers_claims(invoke_api: Invoke) -> None:
    response = invoke_api(load_event("api/get-me.json", tenant="acme", role="member", sub="u-1"))
    assert response["statusCode"] == 200
    assert body(response) == {"tenant_id": "acme", "role": "member", "subject": "u-1"}


def test_a_token_without_tenant_is_forbidden(invoke_api: Invoke) -> None:
    response = invoke_api(load_event("api/get-me.json", claims={"sub": "u-1", "role": "admin"}))
    assert response["statusCode"] == 403
    assert body(response)["error"]["code"] == "no_tenant"


@pytest.mark.parametrize(
    ("claims", "code", "message"),
    [
        ({"sub": "u-1", "role": "admin"}, "no_tenant", "the token carries no valid tenant_id claim"),
        ({"sub": "u-1", "custom:tenant_id": "acme"}, "no_role", "the token carries no valid role claim"),
        (
            {"custom:tenant_id": "acme", "custom:role": "admin"},
            "no_subject",
            "the token carries no valid subject",
        ),
    ],
)
def test_a_token_without_a_usable_claim_is_told_which(
    invoke_api: Invoke, claims: dict[str, str], code: str, message: str
) -> None:
    response = invoke_api(load_event("api/get-me.json", claims=claims))
    assert response["statusCode"] == 403
    assert body(response)["error"] == {"code": code, "message": message, "details": None}


def test_a_role_too_low_is_told_the_role_it_needs(invoke_api: Invoke) -> None:
    response = invoke_api(load_event("api/put-features.json", tenant="acme", role="member", body={}))
    assert response["statusCode"] == 403
    assert body(response)["error"] == {
        "code": "role_required",
        "message": "this action needs the admin role or higher",
        "details": None,
    }


def test_features_start_at_the_defaults(invoke_api: Invoke) -> None:
    response = invoke_api(load_event("api/get-features.json", tenant="fresh", role="viewer"))
    assert response["statusCode"] == 200
    data = body(response)
    assert data["version"] == 0
    # Only what exists is on; the planned capabilities are listed and off
    assert data["flags"] == {
        "crm": True,
        "campaigns": False,
        "ai": False,
        "automations": False,
        "tracking": False,
        "calendar": False,
        "contact_import": False,
    }
    assert data["planned"] == []


def test_a_planned_feature_cannot_be_switched_on(
    invoke_api: Invoke, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an admin, and a capability that is flagged but not built (none is today: one is made so)
    monkeypatch.setattr("mailbridge.features.PLANNED", frozenset({"tracking"}))
    for flag in ("tracking",):
        # When they try to switch on a capability that is not built
        response = invoke_api(
            load_event(
                "api/put-features.json", tenant="acme", role="admin", body={"campaigns": True, flag: True}
            )
        )
        # Then a 400 names it, and nothing is stored
        assert response["statusCode"] == 400, response
        error = body(response)["error"]
        assert error["code"] == "feature_not_available"
        assert error["details"] == {"features": [flag]}
    assert "Item" not in stack.table("SettingsTable").get_item(Key={"pk": "TENANT#acme", "sk": "FEATURES"})


def test_planned_features_stored_on_by_an_older_revision_read_as_off(
    invoke_api: Invoke, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a capability flagged but not built (none is today: tracking is made one), and flags saved
    # by an older revision with it on
    monkeypatch.setattr("mailbridge.features.PLANNED", frozenset({"tracking"}))
    stack.table("SettingsTable").put_item(
        Item={
            "pk": "TENANT#acme",
            "sk": "FEATURES",
            "version": 1,
            "flags": {
                "crm": True,
                "campaigns": True,
                "ai": True,
                "automations": True,
                "tracking": True,
                "calendar": False,
            },
        }
    )
    # When the tenant reads its flags
    data = body(invoke_api(load_event("api/get-features.json", tenant="acme", role="viewer")))
    # Then only what exists reads as on
    on = sorted(name for name, value in data["flags"].items() if value)
    assert on == ["ai", "automations", "campaigns", "crm"]


def test_admin_changes_flags_and_the_change_is_stored(invoke_api: Invoke, stack: Stack) -> None:
    # Given an admin of acme
    event = load_event(
        "api/put-features.json",
        tenant="acme",
        role="admin",
        sub="admin-1",
        body={"campaigns": True, "ai": False},
    )
    # When they switch campaigns on (and a planned capability off, which it already is)
    response = invoke_api(event)
    # Then the answer and the settings table both hold the new flags at version 1
    assert response["statusCode"] == 200, response
    data = body(response)
    assert data["flags"]["campaigns"] is True
    assert data["flags"]["ai"] is False
    assert data["version"] == 1
    assert data["updated_by"] == "admin-1"
    item = stack.table("SettingsTable").get_item(Key={"pk": "TENANT#acme", "sk": "FEATURES"})["Item"]
    assert item["flags"]["campaigns"] is True
    # And a second partial change keeps the first one
    again = invoke_api(load_event("api/put-features.json", tenant="acme", role="owner", body={"crm": False}))
    assert body(again)["flags"] | {} == {**data["flags"], "crm": False}
    assert body(again)["version"] == 2


def test_viewer_and_member_cannot_change_flags(invoke_api: Invoke, stack: Stack) -> None:
    for role in ("viewer", "member"):
        response = invoke_api(
            load_event("api/put-features.json", tenant="acme", role=role, body={"crm": False})
        )
        assert response["statusCode"] == 403
        assert body(response)["error"]["code"] == "role_required"
    assert "Item" not in stack.table("SettingsTable").get_item(Key={"pk": "TENANT#acme", "sk": "FEATURES"})


def test_tenants_never_see_each_others_flags(invoke_api: Invoke) -> None:
    # Given tenant A switched campaigns on
    invoke_api(load_event("api/put-features.json", tenant="tenant-a", role="owner", body={"campaigns": True}))
    # When tenant B reads its flags
    response = invoke_api(load_event("api/get-features.json", tenant="tenant-b", role="owner"))
    # Then B still has the defaults
    assert body(response)["flags"]["campaigns"] is False
    assert body(response)["version"] == 0
    # And A sees its own change
    assert (
        body(invoke_api(load_event("api/get-features.json", tenant="tenant-a")))["flags"]["campaigns"] is True
    )


def test_unknown_flags_and_wrong_types_are_rejected(invoke_api: Invoke) -> None:
    for bad in ({"crm": "yes please"}, {"teleport": True}, [1, 2]):
        response = invoke_api(load_event("api/put-features.json", tenant="acme", role="admin", body=bad))
        assert response["statusCode"] == 422, bad
        error = body(response)["error"]
        assert error["code"] == "validation_error"
        assert error["details"]


def test_invalid_json_is_a_clear_400(invoke_api: Invoke) -> None:
    response = invoke_api(load_event("api/put-features.json", tenant="acme", role="admin", body="{not json"))
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "invalid_json"


def test_a_route_the_resolver_does_not_know_is_404_not_500(invoke_api: Invoke) -> None:
    event = load_event("api/get-me.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/nope"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /nope"
    response = invoke_api(event)
    assert response["statusCode"] == 404
    assert body(response)["error"]["code"] == "not_found"


def test_a_flag_change_is_announced_on_the_bus(invoke_api: Invoke, stack: Stack) -> None:
    # Given a queue subscribed to features.updated on the template's bus
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    queue_url = sqs.create_queue(QueueName="probe-features")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.deployed.buses["EventBus"]
    events.put_rule(
        Name="probe", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["features.updated"]})
    )
    events.put_targets(Rule="probe", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    # When an admin changes a flag
    invoke_api(load_event("api/put-features.json", tenant="acme", role="admin", body={"campaigns": True}))
    # Then one event with the documented detail arrives
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    detail = json.loads(messages[0]["Body"])["detail"]
    assert detail["tenant_id"] == "acme"
    assert detail["idempotency_key"] == "features:acme:1"
    assert detail["data"]["changed"] == ["campaigns"]


def test_a_put_that_changes_nothing_keeps_the_version_and_announces_nothing(
    invoke_api: Invoke, stack: Stack, bus_probe: BusReader
) -> None:
    # Given flags an admin saved once (version 1)
    first = invoke_api(
        load_event("api/put-features.json", tenant="acme", role="admin", sub="a-1", body={"campaigns": True})
    )
    assert body(first)["version"] == 1
    bus_probe()  # forget the first change's announcement
    # When another admin sends the same value again, and then an empty change
    for change in ({"campaigns": True}, {}):
        again = invoke_api(
            load_event("api/put-features.json", tenant="acme", role="owner", sub="o-2", body=change)
        )
        # Then the answer is the stored revision, unchanged
        assert again["statusCode"] == 200, again
        assert body(again) == body(first)
    # And the stored item is still version 1 by the first admin, and nothing was announced
    item = stack.table("SettingsTable").get_item(Key={"pk": "TENANT#acme", "sk": "FEATURES"})["Item"]
    assert (item["version"], item["updated_by"]) == (1, "a-1")
    assert bus_probe() == []


def test_docs_and_openapi_list_every_route(invoke_api: Invoke) -> None:
    from local.template import load_template
    from tests.fixtures.aws import TEMPLATE

    spec = body(invoke_api(load_event("api/get-openapi.json")))
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    declared = {(r.method, r.path) for r in load_template([TEMPLATE]).routes()} - {
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
    }
    assert documented == declared
    assert set(spec["paths"]["/features"]) == {"get", "put"}
    assert "403" in spec["paths"]["/features"]["put"]["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    docs = invoke_api(load_event("api/get-docs.json"))
    assert docs["statusCode"] == 200
    assert "swagger-ui" in docs["body"].lower()
    assert '"/features"' in docs["body"]
