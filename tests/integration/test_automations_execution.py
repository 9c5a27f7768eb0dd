"""Running rules on moto: bus event -> AutomationsQueue -> automations function, and the execution
service with injected executors (idempotency, retries, circuit breaker, loop protection, runs)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest

from mailbridge.automations.execution import ExecutionDeps, RetryLater, Trigger, handle_trigger
from mailbridge.automations.signing import DELIVERY_HEADER, verify_webhook
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import Invalid, ProviderError
from mailbridge.store.automations import AutomationStore, run_sk
from mailbridge.store.settings import DynamoFeatureStore
from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack, reset_caches
from tests.integration.queue_harness import QueueConsumer
from tests.integration.redelivery import bus_seen, sample_record, snapshot, three_deliveries
from tests.integration.sync_harness import _record

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT = "acme"
SECRET = "whsec_" + "k" * 43
CONTACT = {
    "contact_id": "ct_018f2a6b3c4d9c0d1e2f3a4b5c",
    "name": "Ada Lovelace",
    "emails": [{"address": "ada@example.com", "primary": True}],
    "tags": ["new-lead"],
}


class Receiver:
    """A local HTTP endpoint that records what is POSTed to it and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.paths.append(self.path)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


class Automations:
    def __init__(self, stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in stack.env("AutomationsFunction").items():
            monkeypatch.setenv(name, value)
        reset_caches()
        self.invoke_api = invoke_api
        self.store = AutomationStore(stack.deployed.tables["AutomationsTable"])
        self.features = DynamoFeatureStore(stack.deployed.tables["SettingsTable"])
        self.publisher = EventPublisher(stack.deployed.buses["EventBus"])
        self.consumer = QueueConsumer(stack, "automations", "AutomationsQueue")
        self.api("put-features", 200, role="admin", body={"automations": True})

    def api(
        self, name: str, status: int, *, role: str = "admin", path: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        event = load_event(f"api/{name}.json", tenant=TENANT, role=role, **kw)
        if path is not None:
            raw = event["routeKey"].split(" ", 1)[1]
            for key, value in path.items():
                raw = raw.replace("{" + key + "}", value)
            event["pathParameters"] = dict(path)
            event["rawPath"] = event["requestContext"]["http"]["path"] = raw
        response = self.invoke_api(event)
        assert response["statusCode"] == status, response
        return json.loads(response["body"]) if response.get("body") else None

    def rule(self, actions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        body = {
            "name": "Rule",
            "trigger": {"event": "contact.created"},
            "conditions": [{"field": "contact.tags", "operator": "contains", "value": "new-lead"}],
            "actions": actions,
            **fields,
        }
        return self.api("automations-create", 201, body=body)  # type: ignore[no-any-return]

    def announce(self, contact: dict[str, Any], *, key: str = "contact.created:1", **extra: Any) -> None:
        self.publisher.publish(
            [
                DomainEvent(
                    detail_type="contact.created",
                    tenant_id=TENANT,
                    idempotency_key=key,
                    data={"contact": contact, **extra},
                )
            ]
        )

    def runs(self, rule_id: str) -> list[dict[str, Any]]:
        return self.api("automations-runs", 200, role="viewer", path={"rule_id": rule_id})["items"]  # type: ignore[no-any-return]

    def deps(self, executors: dict[str, Any], **kw: Any) -> ExecutionDeps:
        return ExecutionDeps(
            store=self.store,
            features=self.features,
            publisher=self.publisher,
            executors=executors,
            sleep=kw.pop("sleep", lambda _: None),
            **kw,
        )


@pytest.fixture
def auto(stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch) -> Automations:
    return Automations(stack, invoke_api, monkeypatch)


def _trigger(data: dict[str, Any], event_id: str = "ev-1") -> Trigger:
    return Trigger(
        tenant_id=TENANT,
        event_id=event_id,
        event_type="contact.created",
        occurred_at=datetime(2030, 1, 1, 9, tzinfo=UTC),
        data=data,
    )


TRACK = {"type": "analytics.track", "metric": "leads.created"}

# ------------------------------------------------------------------------------ through the queue


def test_a_webhook_is_delivered_signed_and_once_when_the_event_comes_twice(
    auto: Automations, receiver: Receiver, stack: Stack
) -> None:
    # Given a registered secret and a rule posting the contact to a local receiver
    auto.store.put_secret(TENANT, "crm-hook", SECRET)
    webhook = {
        "type": "webhook.publish",
        "url": receiver.url,
        "secret_ref": "crm-hook",
        "payload": {"email": "{{contact.email}}", "first": "{{contact.first_name}}"},
    }
    rule = auto.rule([webhook])
    # When a tagged contact is created and the bus delivers the event twice
    auto.announce(CONTACT)
    auto.announce(CONTACT)
    auto.consumer.drain(expect_success=True)
    # Then the receiver got exactly one delivery, signed with the secret
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert json.loads(body) == {"email": "ada@example.com", "first": "Ada"}
    delivery = verify_webhook(
        body=body, headers=headers, secret=SECRET, now=int(datetime.now(UTC).timestamp())
    )
    assert delivery == f"{rule['rule_id']}:1:contact.created:1:0"
    # And the run history shows one succeeded run with what was sent
    (run,) = auto.runs(rule["rule_id"])
    assert (run["status"], run["matched"], run["rule_version"]) == ("succeeded", True, 1)
    (step,) = run["steps"]
    assert (step["status"], step["output"]) == ("succeeded", {"status": 200})
    assert step["input"]["headers"][DELIVERY_HEADER] == delivery
    assert (
        auto.api(
            "automations-get-run",
            200,
            role="viewer",
            path={"rule_id": rule["rule_id"], "run_id": run["run_id"]},
        )
        == run
    )


@pytest.mark.parametrize("trigger", ["event", "cron"])
def test_a_record_delivered_three_times_runs_the_rule_once_and_posts_once(
    auto: Automations, receiver: Receiver, stack: Stack, bus_probe: BusReader, trigger: str
) -> None:
    # Given an enabled rule whose webhook action reaches a local receiver: on contact.created, or
    # on its cron schedule
    auto.store.put_secret(TENANT, "crm-hook", SECRET)
    webhook = {"type": "webhook.publish", "url": receiver.url, "secret_ref": "crm-hook"}
    if trigger == "event":
        rule = auto.rule([webhook])
        # And the rule's event on the AutomationsQueue as the template's AutomationsRule put it there
        auto.announce(CONTACT)
        [message] = auto.consumer.receive()
        auto.consumer.sqs.delete_message(
            QueueUrl=auto.consumer.queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
        event = {"Records": [_record(message, auto.consumer.queue_url)]}
    else:
        rule = auto.rule([webhook], trigger={"cron": "cron(0 9 ? * MON *)", "timezone": "UTC"}, conditions=[])
        # And the firing its schedule puts on the AutomationsQueue
        firing = {"kind": "cron", "tenant_id": TENANT, "rule_id": rule["rule_id"]}
        event = sample_record("automations-cron", firing)
    bus = bus_seen(bus_probe)

    def observe() -> tuple[dict[str, Any], int]:
        return snapshot(stack, bus), len(receiver.requests)

    # When SQS hands the record to the function three times
    deliveries = three_deliveries(
        lambda e: auto.consumer.function.lambda_handler(e, FakeLambdaContext()), event, observe
    )

    # Then the first delivery ran the rule and posted once ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    (stored_before, posted_before), (stored_once, posted_once) = deliveries.before, deliveries.once
    assert (posted_before, posted_once) == (0, 1)
    assert stored_once != stored_before
    (run,) = auto.runs(rule["rule_id"])
    assert (run["status"], run["steps"][0]["status"]) == ("succeeded", "succeeded")
    # ... and the other two posted nothing, stored nothing and put nothing on the bus
    assert deliveries.thrice[1] == posted_once
    assert deliveries.thrice == deliveries.once


def test_an_action_already_performed_is_not_repeated_when_its_run_record_was_lost(
    auto: Automations, receiver: Receiver, stack: Stack
) -> None:
    # Given a rule whose webhook was delivered once for an event
    auto.store.put_secret(TENANT, "crm-hook", SECRET)
    rule = auto.rule([{"type": "webhook.publish", "url": receiver.url, "secret_ref": "crm-hook"}])
    auto.announce(CONTACT)
    auto.consumer.drain(expect_success=True)
    (run,) = auto.runs(rule["rule_id"])
    # When the run record is lost (the function stopped before writing it) and the event comes again
    stack.table("AutomationsTable").delete_item(
        Key={"pk": f"TENANT#{TENANT}", "sk": run_sk(rule["rule_id"], run["run_id"])}
    )
    auto.announce(CONTACT)
    auto.consumer.drain(expect_success=True)
    # Then the action's idempotency record keeps the webhook from being posted again
    assert len(receiver.requests) == 1
    (again,) = auto.runs(rule["rule_id"])
    assert again["steps"][0]["status"] == "succeeded"


def test_an_event_the_condition_refuses_leaves_a_skipped_run_and_does_nothing(
    auto: Automations, receiver: Receiver
) -> None:
    # Given a rule for contacts tagged new-lead
    auto.store.put_secret(TENANT, "crm-hook", SECRET)
    rule = auto.rule([{"type": "webhook.publish", "url": receiver.url, "secret_ref": "crm-hook"}])
    # When a contact without the tag is created
    auto.announce({**CONTACT, "tags": ["customer"]})
    auto.consumer.drain(expect_success=True)
    # Then nothing was posted and the run says why
    assert receiver.requests == []
    (run,) = auto.runs(rule["rule_id"])
    assert (run["status"], run["matched"], run["steps"][0]["status"]) == ("skipped", False, "skipped")


def test_a_transient_failure_comes_back_through_the_queue_and_then_succeeds(
    auto: Automations, receiver: Receiver, stack: Stack
) -> None:
    # Given a Slack-style endpoint that fails (503) on every attempt of the first delivery
    rule = auto.rule([{"type": "message.post", "url": receiver.url, "text": "New lead: {{contact.email}}"}])
    receiver.statuses = [503] * 12
    auto.announce(CONTACT)
    (message,) = auto.consumer.receive()
    # When the function runs it
    result = auto.consumer.invoke([message])
    # Then the record is reported failed (retried later by SQS) and the run is still running
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [message["MessageId"]]
    (run,) = auto.runs(rule["rule_id"])
    assert (run["status"], run["steps"][0]["error"]["code"]) == ("running", "upstream_error")
    # When the endpoint recovers and the record comes back
    receiver.statuses = []
    auto.consumer.sqs.change_message_visibility(
        QueueUrl=auto.consumer.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    auto.consumer.drain(expect_success=True)
    # Then the message was posted and the run succeeded
    (run,) = auto.runs(rule["rule_id"])
    assert run["status"] == "succeeded"
    assert json.loads(receiver.requests[-1][1]) == {"text": "New lead: ada@example.com"}


# ------------------------------------------------------------------------------ the service


def test_actions_run_in_order_with_their_keys_and_a_task_through_the_injected_creator(
    auto: Automations,
) -> None:
    # Given a rule that tracks a metric and creates a task
    task = {
        "type": "task.create",
        "title": "Call {{contact.first_name}}",
        "contact_id": "{{contact.contact_id}}",
    }
    rule = auto.rule([TRACK, task])
    calls: list[tuple[str, Any]] = []

    def create_task(ctx: Any, body: Any, store: Any, publisher: Any, *, idempotency_key: str) -> Any:
        calls.append((idempotency_key, body))
        return type("Task", (), {"task_id": "tk_1"})()

    from mailbridge.automations.executors import ExecutorDeps, default_executors

    executors = default_executors(ExecutorDeps(store=auto.store, create_task=create_task))
    # When the event is handled
    (run,) = handle_trigger(_trigger({"contact": CONTACT}), auto.deps(executors))
    # Then both ran in order, the task with its rendered fields and the action's key
    assert [s.status for s in run.steps] == ["succeeded", "succeeded"]
    ((key, body),) = calls
    assert key == f"{rule['rule_id']}:1:ev-1:1"
    assert (body.title, body.contact_id, body.assignee) == ("Call Ada", CONTACT["contact_id"], rule["owner"])
    assert run.steps[1].output == {"task_id": "tk_1"}
    output = run.steps[0].output
    assert isinstance(output, dict)
    assert auto.store.get_metric(TENANT, str(output["day"]), "leads.created") == (1, 1.0)


def test_transient_errors_are_retried_in_the_run_with_exponential_backoff(auto: Automations) -> None:
    # Given an action that fails twice with a transient error, then works
    rule = auto.rule([TRACK])
    failures = [ProviderError("busy"), ProviderError("busy")]

    def flaky(action: Any, step: Any) -> tuple[Any, Any]:
        if failures:
            raise failures.pop(0)
        return {}, {"ok": True}

    sleeps: list[float] = []
    # When the event is handled
    (run,) = handle_trigger(
        _trigger({"contact": CONTACT}), auto.deps({"analytics.track": flaky}, sleep=sleeps.append)
    )
    # Then it succeeded on the third attempt after waiting 0.2 s then 0.4 s
    assert (run.status, run.steps[0].attempts) == ("succeeded", 3)
    assert sleeps == [0.2, 0.4]
    assert rule["rule_id"] == run.rule_id


def test_a_transient_error_on_the_last_delivery_fails_the_run(auto: Automations) -> None:
    # Given an action that always fails transiently
    auto.rule([TRACK])

    def down(action: Any, step: Any) -> tuple[Any, Any]:
        raise ProviderError("down")

    deps = auto.deps({"analytics.track": down})
    # When it is not the last delivery, the queue is asked to retry
    with pytest.raises(RetryLater):
        handle_trigger(_trigger({"contact": CONTACT}), deps)
    # When it is the last one, the run is recorded as failed
    (run,) = handle_trigger(_trigger({"contact": CONTACT}), deps, final_attempt=True)
    assert (run.status, run.error) == ("failed", {"code": "provider_error", "message": "down"})


def test_failing_runs_in_a_row_pause_the_rule_and_tell_the_owner(
    auto: Automations, bus_probe: BusReader
) -> None:
    # Given a rule whose action always fails for good
    rule = auto.rule([TRACK, TRACK])

    def broken(action: Any, step: Any) -> tuple[Any, Any]:
        raise Invalid("bad", code="invalid_action")

    deps = auto.deps({"analytics.track": broken}, breaker_threshold=3)
    # When three events fail it
    for n in range(3):
        (run,) = handle_trigger(_trigger({"contact": CONTACT}, f"ev-{n}"), deps)
        assert [s.status for s in run.steps] == ["failed", "skipped"]
    # Then the rule is paused with a reason and no longer triggers
    paused = auto.api("automations-get", 200, role="viewer", path={"rule_id": rule["rule_id"]})
    assert (paused["paused_reason"], paused["consecutive_failures"]) == ("3 failed runs in a row", 3)
    assert handle_trigger(_trigger({"contact": CONTACT}, "ev-4"), deps) == []
    # And the owner is told on the bus
    events = [e for e in bus_probe() if e["detail-type"] == "automation.paused"]
    assert [e["detail"]["data"]["rule_id"] for e in events] == [rule["rule_id"]]
    assert events[0]["detail"]["data"]["owner"] == rule["owner"]
    # When the owner enables it again, it triggers again
    auto.api("automations-enable", 200, path={"rule_id": rule["rule_id"]})
    assert len(handle_trigger(_trigger({"contact": CONTACT}, "ev-5"), deps)) == 1


def test_events_caused_by_automations_carry_their_depth_and_stop_beyond_three(
    auto: Automations, bus_probe: BusReader
) -> None:
    # Given a rule whose action publishes an event (analytics.track)
    from mailbridge.automations.executors import ExecutorDeps, default_executors

    auto.rule([TRACK])
    deps = auto.deps(default_executors(ExecutorDeps(store=auto.store)))
    # When an event caused by an automation two steps deep arrives
    (run,) = handle_trigger(_trigger({"contact": CONTACT, "automation": {"depth": 2}}), deps)
    # Then the rule runs, and the event its action publishes is one step deeper
    assert run.status == "succeeded"
    (tracked,) = [e for e in bus_probe() if e["detail-type"] == "analytics.tracked"]
    assert tracked["detail"]["data"]["automation"]["depth"] == 3
    # When an event three steps deep arrives, no rule triggers
    assert handle_trigger(_trigger({"contact": CONTACT, "automation": {"depth": 3}}, "ev-2"), deps) == []


def test_a_finished_run_is_not_run_again_when_its_event_comes_back(auto: Automations) -> None:
    # Given a rule whose action failed for good on an event
    auto.rule([TRACK])
    calls: list[str] = []

    def broken(action: Any, step: Any) -> tuple[Any, Any]:
        calls.append(step.idempotency_key)
        raise Invalid("bad", code="invalid_action")

    deps = auto.deps({"analytics.track": broken})
    (first,) = handle_trigger(_trigger({"contact": CONTACT}), deps)
    # When the same event is delivered again
    (again,) = handle_trigger(_trigger({"contact": CONTACT}), deps)
    # Then the run is the recorded one: the action was not tried again, the failure counted once
    assert len(calls) == 1
    assert again == first
    assert auto.store.require_rule(TENANT, first.rule_id).consecutive_failures == 1


# ------------------------------------------------------------------------------ dry-run and replay


def test_a_dry_run_shows_what_each_action_would_do_and_does_nothing(
    auto: Automations, receiver: Receiver, bus_probe: BusReader
) -> None:
    # Given a secret registered through the API and a rule with a webhook and a metric
    created = auto.api("automations-create-secret", 201, role="admin", body={"name": "crm-hook"})
    rule = auto.rule(
        [
            {"type": "webhook.publish", "url": receiver.url, "secret_ref": "crm-hook"},
            TRACK,
            {"type": "deal.update", "fields": {"stage": "won"}},
        ]
    )
    # When it is tested with sample data
    result = auto.api(
        "automations-test", 200, path={"rule_id": rule["rule_id"]}, body={"data": {"contact": CONTACT}}
    )
    # Then it matched, and the webhook step shows the signed request it would send
    assert (result["matched"], result["version"]) == (True, 1)
    hook, track, deal = result["steps"]
    assert (hook["status"], hook["input"]["url"]) == ("would_run", receiver.url)
    body = hook["input"]["body"].encode()
    verify_webhook(
        body=body,
        headers=hook["input"]["headers"],
        secret=created["secret"],
        now=int(datetime.now(UTC).timestamp()),
    )
    assert json.loads(body)["contact"]["email"] == "ada@example.com"
    assert (track["status"], track["input"]["metric"]) == ("would_run", "leads.created")
    # And an action the data cannot fill says why it would fail
    assert (deal["status"], deal["error"]["code"]) == ("failed", "undefined_variable")
    # And nothing was sent, recorded or published
    assert receiver.requests == []
    assert auto.runs(rule["rule_id"]) == []
    assert [e for e in bus_probe() if e["detail-type"] == "analytics.tracked"] == []
    # And data the condition refuses shows every step skipped
    refused = auto.api(
        "automations-test",
        200,
        path={"rule_id": rule["rule_id"]},
        body={"data": {"contact": {**CONTACT, "tags": []}}},
    )
    assert refused["matched"] is False
    assert {s["status"] for s in refused["steps"]} == {"skipped"}


def test_replay_evaluates_an_old_version_over_archived_events_beside_what_the_current_one_did(
    auto: Automations,
) -> None:
    # Given a rule for new-lead contacts that ran over two events (one tagged, one not)
    rule = auto.rule([TRACK])
    auto.announce(CONTACT, key="contact.created:a")
    auto.announce({**CONTACT, "tags": ["customer"]}, key="contact.created:b")
    auto.consumer.drain(expect_success=True)
    # And a second version that matches customers instead
    auto.api(
        "automations-put",
        200,
        path={"rule_id": rule["rule_id"]},
        body={
            "name": "Rule",
            "trigger": {"event": "contact.created"},
            "conditions": [{"field": "contact.tags", "operator": "contains", "value": "customer"}],
            "actions": [TRACK],
            "version": 1,
        },
    )
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    # When version 2 is replayed over the window
    result = auto.api(
        "automations-replay", 200, path={"rule_id": rule["rule_id"]}, body={"version": 2, **window}
    )
    # Then both archived events are evaluated with version 2, beside version 2's own runs (none yet)
    assert (result["events"], result["matched"], result["current_version"]) == (2, 1, 2)
    by_key = {item["event_id"]: item for item in result["items"]}
    assert by_key["contact.created:b"]["matched"] is True
    assert [s["status"] for s in by_key["contact.created:b"]["would_run"]] == ["would_run"]
    assert by_key["contact.created:a"]["matched"] is False
    assert all(item["current_run"] is None for item in result["items"])
    # When version 1 is replayed, it matches the tagged event, as version 1 did
    first = auto.api(
        "automations-replay", 200, path={"rule_id": rule["rule_id"]}, body={"version": 1, **window}
    )
    assert {i["event_id"]: i["matched"] for i in first["items"]} == {
        "contact.created:a": True,
        "contact.created:b": False,
    }
    # And a window outside the events finds nothing; a window backwards is refused
    empty = {
        "version": 1,
        "from": (now + timedelta(hours=2)).isoformat(),
        "to": (now + timedelta(hours=3)).isoformat(),
    }
    assert auto.api("automations-replay", 200, path={"rule_id": rule["rule_id"]}, body=empty)["events"] == 0
    backwards = {"version": 1, "from": window["to"], "to": window["from"]}
    refused = auto.api("automations-replay", 400, path={"rule_id": rule["rule_id"]}, body=backwards)
    assert refused["error"]["code"] == "invalid_window"


def test_replay_shows_the_current_versions_runs(auto: Automations) -> None:
    # Given a rule at version 1 that ran over a tagged contact's event
    rule = auto.rule([TRACK])
    auto.announce(CONTACT, key="contact.created:a")
    auto.consumer.drain(expect_success=True)
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    # When version 1 (the current one) is replayed
    result = auto.api(
        "automations-replay", 200, path={"rule_id": rule["rule_id"]}, body={"version": 1, **window}
    )
    # Then the event shows the run it had
    (item,) = result["items"]
    assert item["current_run"]["status"] == "succeeded"
    assert item["current_run"]["rule_version"] == 1


def test_queue_enqueue_sends_to_a_registered_queue_of_this_account_only(auto: Automations) -> None:
    # Given a queue of this account registered under a name, and a rule enqueueing to it
    from mailbridge.automations.executors import ExecutorDeps, default_executors

    sqs: Any = boto3.client("sqs")
    url = sqs.create_queue(QueueName="tenant-leads")["QueueUrl"]
    registered = auto.api(
        "automations-register-queue", 201, role="admin", body={"name": "leads", "queue_url": url}
    )
    assert registered == {"name": "leads", "queue_url": url}
    auto.rule([{"type": "queue.enqueue", "queue": "leads", "message": {"email": "{{contact.email}}"}}])
    # When the event is handled
    deps = auto.deps(default_executors(ExecutorDeps(store=auto.store)))
    (run,) = handle_trigger(_trigger({"contact": CONTACT}), deps)
    # Then the rendered message is on the queue
    assert run.status == "succeeded"
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"]) == {"email": "ada@example.com"}
    # And a queue of another account, or not an SQS URL, is refused
    foreign = url.replace("123456789012", "210987654321")
    for bad, code in ((foreign, "queue_not_in_account"), ("https://example.com/x", "invalid_queue_url")):
        refused = auto.api(
            "automations-register-queue", 400, role="admin", body={"name": "x", "queue_url": bad}
        )
        assert refused["error"]["code"] == code
    # And a name nobody registered fails the action for good
    auto.rule([{"type": "queue.enqueue", "queue": "nope"}], name="Other")
    runs = handle_trigger(_trigger({"contact": CONTACT}, "ev-2"), deps)
    failed = [r for r in runs if r.status == "failed"]
    assert [s.error for r in failed for s in r.steps] == [
        {"code": "queue_not_registered", "message": "no queue is registered under this name"}
    ]


def test_http_openapi_calls_the_registered_operation_with_mapped_parameters(
    auto: Automations, receiver: Receiver
) -> None:
    # Given a registered document whose server is the local receiver, and a rule calling addNote
    from mailbridge.automations.executors import ExecutorDeps, default_executors

    document = json.loads(load_event("api/automations-register-openapi.json")["body"])
    document["document"]["servers"] = [{"url": receiver.url.removesuffix("/hook")}]
    registered = auto.api("automations-register-openapi", 201, role="admin", body=document)
    assert registered["operations"] == ["addNote"]
    action = {
        "type": "http.openapi",
        "document_id": "billing-api",
        "operation_id": "addNote",
        "parameters": {"customer_id": "{{contact.contact_id}}", "source": "a b"},
        "body": {"text": "Welcome {{contact.first_name}}"},
    }
    auto.rule([action])
    deps = auto.deps(default_executors(ExecutorDeps(store=auto.store, local_mode=True)))
    # When the event is handled
    (run,) = handle_trigger(_trigger({"contact": CONTACT}), deps)
    # Then the operation was called at its path with the parameters mapped and the body rendered
    assert run.status == "succeeded", run.steps[0].error
    ((_, body),) = receiver.requests
    assert json.loads(body) == {"text": "Welcome Ada"}
    assert receiver.paths == [f"/customers/{CONTACT['contact_id']}/notes?source=a+b"]
    # And a required parameter the action leaves out fails the action for good
    auto.rule([{**action, "parameters": {"source": "x"}}], name="Missing")
    failed = [r for r in handle_trigger(_trigger({"contact": CONTACT}, "ev-2"), deps) if r.status == "failed"]
    assert [(r.steps[0].error or {}).get("code") for r in failed] == ["missing_parameter"]
    # And a document that is not OpenAPI 3 is refused
    refused = auto.api(
        "automations-register-openapi",
        400,
        role="admin",
        body={"document_id": "x", "document": {"swagger": "2.0"}},
    )
    assert refused["error"]["code"] == "invalid_openapi"


def test_actions_call_only_the_tenants_allowed_hosts_once_it_sets_any(
    auto: Automations, receiver: Receiver
) -> None:
    # Given a webhook rule to the local receiver, and an allowlist that does not name it
    auto.store.put_secret(TENANT, "crm-hook", SECRET)
    webhook = {"type": "webhook.publish", "url": receiver.url, "secret_ref": "crm-hook", "payload": {"a": 1}}
    rule = auto.rule([webhook])
    assert auto.api("automations-get-outbound-hosts", 200, role="viewer") == {"allowed_hosts": []}
    # (members may not change it; hosts are checked and stored in lower case)
    auto.api("automations-put-outbound-hosts", 403, role="member", body={"allowed_hosts": [".example.com"]})
    for bad in (["http://x.example"], ["a b"], ["x.example\n"], ["-x.example"], ["h.example"] * 101):
        answer = auto.api("automations-put-outbound-hosts", 422, role="admin", body={"allowed_hosts": bad})
        assert answer["error"]["code"] == "validation_error"
    stored = auto.api(
        "automations-put-outbound-hosts", 200, role="admin", body={"allowed_hosts": ["Hooks.Example.com"] * 2}
    )
    assert stored == {"allowed_hosts": ["hooks.example.com"]}
    # When a tagged contact is created
    auto.announce(CONTACT)
    auto.consumer.drain()
    # Then nothing reaches the receiver and the run says why
    assert receiver.requests == []
    (run,) = auto.runs(rule["rule_id"])
    (step,) = run["steps"]
    assert (step["status"], step["error"]["code"]) == ("failed", "host_not_allowed")
    # When the receiver's host is allowed, the next event is delivered
    host = receiver.url.split("//", 1)[1].split(":", 1)[0]
    auto.api("automations-put-outbound-hosts", 200, role="admin", body={"allowed_hosts": [host]})
    auto.announce(CONTACT, key="contact.created:2")
    auto.consumer.drain()
    assert len(receiver.requests) == 1
