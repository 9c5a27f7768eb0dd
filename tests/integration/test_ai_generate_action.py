"""The `ai.generate` automation action (issue 14 point 7) on the `email.categorized` trigger,
in-process on moto: mail categorized by the real categorize function, the announcement run by the
real automations function, the run read back through the api function."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.aws import Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.test_ai_categorize import fixture, receive, set_ai
from tests.integration.test_api_emails import Seeder

Invoke = Any


@pytest.fixture
def consumer(stack: Stack) -> QueueConsumer:
    return QueueConsumer(stack, "categorize", "CategorizeQueue")


def ai_rule(auto: Any, task: str) -> dict[str, Any]:
    return auto.api(  # type: ignore[no-any-return]
        "automations-create",
        201,
        body={
            "name": f"Support {task}",
            "trigger": {"event": "email.categorized"},
            "conditions": [{"field": "category", "operator": "equals", "value": "support"}],
            "actions": [{"type": "ai.generate", "task": task}],
        },
    )


def only_step(auto: Any, rule_id: str) -> dict[str, Any]:
    (run,) = auto.runs(rule_id)
    assert run["status"] == "succeeded", run
    (step,) = run["steps"]
    return step  # type: ignore[no-any-return]


def test_ai_generate_stores_reply_suggestions_and_a_summary_in_the_run(
    stack: Stack, invoke_api: Invoke, consumer: QueueConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_automations_execution import Automations

    # Given ai on and two rules on email.categorized for support mail: suggestions and a summary
    set_ai(invoke_api, True)
    auto = Automations(stack, invoke_api, monkeypatch)
    suggest, summary = ai_rule(auto, "reply_suggestions"), ai_rule(auto, "summary")
    email_id = Seeder(stack).add(fixture("support_question.eml"))
    # When it is categorized and the automations function gets the announcement
    receive(stack, [email_id])
    consumer.drain(expect_success=True)
    auto.consumer.drain(expect_success=True)
    # Then the first run's output holds three support replies for that email
    step = only_step(auto, suggest["rule_id"])
    assert step["input"] == {"task": "reply_suggestions", "email_id": email_id}
    output = step["output"]
    assert output["email_id"] == email_id
    assert len(output["suggestions"]) == 3
    assert all(isinstance(s, str) and s and "\n" not in s for s in output["suggestions"])
    assert any("error message" in s or "looking into this" in s for s in output["suggestions"])
    # And the second run's output is a one-paragraph summary naming the subject
    text = only_step(auto, summary["rule_id"])["output"]["summary"]
    assert " wrote about " in text
    assert 0 < len(text) <= 400


def test_ai_generate_fails_the_step_while_the_ai_flag_is_off(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbridge.bus import DomainEvent
    from tests.integration.test_automations_execution import Automations

    # Given a rule with ai.generate, and the ai flag off
    auto = Automations(stack, invoke_api, monkeypatch)
    rule = ai_rule(auto, "summary")
    email_id = Seeder(stack).add(fixture("support_question.eml"))
    # When an email.categorized event for support mail reaches the automations function
    auto.publisher.publish(
        [
            DomainEvent(
                detail_type="email.categorized",
                tenant_id="acme",
                idempotency_key=f"email.categorized:{email_id}:t",
                data={"email_id": email_id, "category": "support"},
            )
        ]
    )
    auto.consumer.drain(expect_success=True)
    # Then the run failed with feature_disabled and generated nothing
    (run,) = auto.runs(rule["rule_id"])
    assert run["status"] == "failed"
    assert run["steps"][0]["error"]["code"] == "feature_disabled"
    assert run["steps"][0].get("output") is None
