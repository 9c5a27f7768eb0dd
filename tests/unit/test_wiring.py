"""template.yaml, the handlers and events/ must agree; these tests catch drift in either direction."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from local.template import Template, load_template
from tests.fixtures.aws import reset_caches

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
# KMS key ids only exist once created; any id will do for wiring checks.
TEMPLATE.physical_ids["DataKey"] = "00000000-0000-4000-8000-000000000000"


def _import_handler(template: Template, function_id: str, monkeypatch: pytest.MonkeyPatch) -> object:
    fn = template.functions()[function_id]
    for name, value in fn.environment.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    module_file, _, attribute = fn.handler.rpartition(".")
    path = fn.code_dir / f"{module_file.replace('.', '/')}.py"
    assert path.is_file(), f"{function_id}: handler file {path} is missing"
    spec = importlib.util.spec_from_file_location(f"wiring_{function_id}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(fn.code_dir))
    monkeypatch.setitem(sys.modules, f"wiring_{function_id}", module)
    spec.loader.exec_module(module)
    handler = getattr(module, attribute, None)
    assert callable(handler), f"{function_id}: {fn.handler} is not callable"
    return module


@pytest.mark.parametrize("function_id", sorted(TEMPLATE.functions()))
def test_every_functions_handler_exists_and_imports(
    function_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import_handler(TEMPLATE, function_id, monkeypatch)


HTTP_FUNCTIONS = sorted({r.function for r in TEMPLATE.routes()})


def test_several_functions_serve_http_routes() -> None:
    # The api function is not the only one: OAuth and provider pushes have their own
    assert {"ApiFunction", "OAuthFunction", "WebhooksFunction"} <= set(HTTP_FUNCTIONS)


@pytest.mark.parametrize("function_id", HTTP_FUNCTIONS)
def test_resolver_routes_and_template_routes_are_the_same_set(
    function_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function loaded with docs on (the template's default)
    module = _import_handler(TEMPLATE, function_id, monkeypatch)
    app = module.app  # type: ignore[attr-defined]
    if hasattr(app, "load_all"):
        app.load_all()  # the api function's routers load on demand; compare the full set
    # When both sides list their (method, path) pairs
    served = {
        (route.method.upper(), re.sub(r"<(\w+)>", r"{\1}", route.path))
        for route in app._static_routes + app._dynamic_routes
    }
    declared = {(r.method, r.path) for r in TEMPLATE.routes() if r.function == function_id}
    # Then they match exactly: no route unreachable, none served without an API Gateway route
    assert served == declared


def test_only_health_docs_and_what_proves_itself_skip_the_authorizer() -> None:
    # The OAuth callback's proof is its single-use state; a push's is its provider's signature; the
    # calendar feed, RSVP links, tracking pixel/links and one-click unsubscribe links carry a signed
    # token in the path instead of a bearer token.
    public = {r.path for r in TEMPLATE.routes() if r.auth is None}
    assert public == {
        "/health",
        "/docs",
        "/openapi.json",
        "/oauth/{provider}/callback",
        "/webhooks/gmail",
        "/webhooks/graph",
        "/webhooks/salesforce",
        "/webhooks/hubspot",
        "/calendar/feed/{token}",
        "/calendar/rsvp/{token}",
        "/t/o/{token}",
        "/t/c/{token}",
        "/u/{token}",
    }


def _queues_without_dlq(template: Template) -> list[str]:
    by_arn = {template.get_att(lid, "Arn"): lid for lid in template.of_type("AWS::SQS::Queue")}
    missing = []
    for mapping in template.queue_mappings():
        lid = by_arn.get(mapping.queue_arn)
        props = template.properties(lid) if lid else {}
        if not (props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"):
            missing.append(lid or mapping.queue_arn)
    return missing


def test_every_consumed_queue_has_a_dlq() -> None:
    assert _queues_without_dlq(TEMPLATE) == []


def test_the_dlq_check_catches_a_queue_without_one(tmp_path: Path) -> None:
    # Given a template fragment whose consumer reads a queue with no redrive policy
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(
        """
Resources:
  LonelyQueue:
    Type: AWS::SQS::Queue
  LonelyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/api/
      Handler: app.lambda_handler
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt LonelyQueue.Arn
"""
    )
    template = load_template([ROOT / "template.yaml", overlay])
    # Then the check names it
    assert _queues_without_dlq(template) == ["LonelyQueue"]


def test_every_route_has_a_sample_event() -> None:
    import json

    samples = {
        json.loads(p.read_text())["routeKey"]
        for folder in ("api", "webhooks")
        for p in (ROOT / "events" / folder).glob("*.json")
    }
    declared = {r.route_key for r in TEMPLATE.routes()}
    assert declared <= samples, (
        f"routes without a sample in events/api or /webhooks: {sorted(declared - samples)}"
    )


def test_every_consumed_queue_and_schedule_has_a_sample_event() -> None:
    import json

    arns = [
        r["eventSourceARN"]
        for p in (ROOT / "events" / "sqs").glob("*.json")
        for r in json.loads(p.read_text())["Records"]
    ]
    by_arn = {TEMPLATE.get_att(lid, "Arn"): lid for lid in TEMPLATE.of_type("AWS::SQS::Queue")}
    for mapping in TEMPLATE.queue_mappings():
        queue = by_arn[mapping.queue_arn]
        assert any(queue in arn for arn in arns), f"no events/sqs sample for {queue}"
    inputs = [json.loads(p.read_text()) for p in (ROOT / "events" / "scheduler").glob("*.json")]
    for lid in TEMPLATE.of_type("AWS::Scheduler::Schedule"):
        target_input = json.loads(TEMPLATE.properties(lid)["Target"]["Input"])
        assert target_input in inputs, f"no events/scheduler sample for {lid}"


def test_sync_samples_parse_as_the_sync_function_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    module = _import_handler(TEMPLATE, "SyncFunction", monkeypatch)
    for path in sorted((ROOT / "events" / "sqs").glob("sync-*.json")):
        for record in json.loads(path.read_text())["Records"]:
            parsed = module.SyncRecord.model_validate(record)  # type: ignore[attr-defined]
            assert parsed.body.kind in {
                "sync",
                "poll",
                "push_flags",
                "purge",
                "renew_watches",
                "sync_calendar",
                "push_calendar",
            }, path.name


def test_automations_samples_parse_as_the_automations_function_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    module = _import_handler(TEMPLATE, "AutomationsFunction", monkeypatch)
    kinds = set()
    for path in sorted((ROOT / "events" / "sqs").glob("automations-*.json")):
        for record in json.loads(path.read_text())["Records"]:
            trigger = module.trigger_of(module.AutomationRecord.model_validate(record))  # type: ignore[attr-defined]
            kinds.add(trigger.event_type)
    assert kinds == {"contact.created", "schedule.fired"}
