"""Action schemas (validated on save) and their pure builders (what a run would send)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mailbridge.automations.actions import (
    ACTION_MODELS,
    AnalyticsTrackAction,
    DealUpdateAction,
    EmailSendAction,
    HttpOpenApiAction,
    MessagePostAction,
    QueueEnqueueAction,
    RenderContext,
    TaskCreateAction,
    WebhookPublishAction,
    action_schemas,
    build_deal_update,
    build_email,
    build_message_post,
    build_metric,
    build_openapi_call,
    build_queue_message,
    build_task,
    build_webhook,
    parse_actions,
)
from mailbridge.automations.errors import ActionError, TemplateError
from mailbridge.automations.signing import verify_webhook

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
CONTACT_ID = "ct_0190f3a2b4c5d6e7f8a9b0c1d2"
DEAL_ID = "dl_0190f3a2b4c5d6e7f8a9b0c1d2"
EVENT: dict[str, Any] = {
    "contact": {
        "contact_id": CONTACT_ID,
        "email": "ada@example.com",
        "first_name": "Ada",
        "tags": ["new-lead"],
        "source": "web",
    },
    "deal": {"deal_id": DEAL_ID, "amount": "12500.5"},
}
CONTEXT = RenderContext(data=EVENT, now=NOW)
SECRET = "whsec_" + "s" * 43

WELCOME: list[dict[str, Any]] = [
    {
        "type": "email.send",
        "account_id": "acc_5f0c1d2e3a4b5c6d7e8f",
        "to": [{"address": "{{contact.email}}", "name": "{{contact.first_name}}"}],
        "subject": "Welcome, {{contact.first_name}}",
        "text": "Hi {{contact.first_name}}, welcome aboard.",
        "html": "<p>Hi {{contact.first_name}}</p>",
    },
    {
        "type": "task.create",
        "title": "Follow up with {{contact.first_name}}",
        "due": "{{date_add_days:7}}",
        "priority": "high",
        "contact_id": "{{contact.contact_id}}",
    },
]


def _invalid(raw: Any) -> ActionError:
    with pytest.raises(ActionError) as caught:
        parse_actions(raw)
    return caught.value


def test_the_seeds_welcome_rule_sends_the_email_and_creates_the_task() -> None:
    # Given the seed's two actions, saved
    email, task = parse_actions(WELCOME)
    assert isinstance(email, EmailSendAction)
    assert isinstance(task, TaskCreateAction)
    # When a run builds them for a new contact
    request = build_email(email, CONTEXT)
    draft = build_task(task, CONTEXT)
    # Then the outbox request and the task carry the contact's values and the due date
    assert [(r.address, r.name) for r in request.to] == [("ada@example.com", "Ada")]
    assert request.subject == "Welcome, Ada"
    assert request.text == "Hi Ada, welcome aboard."
    assert request.html == "<p>Hi Ada</p>"
    assert draft.title == "Follow up with Ada"
    assert draft.due == date(2026, 4, 3)
    assert draft.priority == "high"
    assert draft.contact_id == CONTACT_ID


def test_html_bodies_escape_values_and_text_bodies_do_not() -> None:
    (email,) = parse_actions(
        [{**WELCOME[0], "text": "{{contact.first_name}}", "html": "{{contact.first_name}}"}]
    )
    context = RenderContext(data={"contact": {**EVENT["contact"], "first_name": "<Ada>"}}, now=NOW)
    request = build_email(email, context)  # type: ignore[arg-type]
    assert (request.text, request.html) == ("<Ada>", "&lt;Ada&gt;")


def test_a_header_injection_from_the_event_data_is_refused_when_built() -> None:
    # Given a contact whose name carries a CR LF and a Bcc header
    (email,) = parse_actions(WELCOME[:1])
    hostile = {"contact": {**EVENT["contact"], "first_name": "Ada\r\nBcc: x@evil.example"}}
    # When / Then the rendered subject fails the outbox's HeaderText rule
    with pytest.raises(ActionError) as caught:
        build_email(email, RenderContext(data=hostile, now=NOW))  # type: ignore[arg-type]
    assert {"control_characters"} <= {e["type"] for e in caught.value.details}
    assert "evil" not in repr(caught.value.details)


def test_an_address_that_renders_to_no_address_is_invalid() -> None:
    (email,) = parse_actions([{**WELCOME[0], "to": [{"address": "{{contact.source}}"}]}])
    with pytest.raises(ActionError) as caught:
        build_email(email, CONTEXT)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_action"


def test_an_undefined_variable_surfaces_as_the_templates_error() -> None:
    (task,) = parse_actions([{"type": "task.create", "title": "Call {{contact.phone}}"}])
    with pytest.raises(TemplateError) as caught:
        build_task(task, CONTEXT)  # type: ignore[arg-type]
    assert caught.value.code == "undefined_variable"


@pytest.mark.parametrize(
    ("raw", "type_"),
    [
        ({**WELCOME[0], "subject": "{{ contact.items() }}"}, "unknown_helper"),
        ({**WELCOME[0], "subject": "{% for x in y %}{% endfor %}"}, "invalid_template"),
        ({**WELCOME[1], "due": "{{date_add_weeks:1}}"}, "unknown_helper"),
        ({**WELCOME[0], "subject": "Hi\r\nBcc: x"}, "control_characters"),
        ({**WELCOME[0], "to": []}, "value_error"),
        ({**WELCOME[0], "account_id": "acc_1"}, "string_pattern_mismatch"),
        ({"type": "sms.send", "to": "+1"}, "union_tag_invalid"),
        ({**WELCOME[1], "colour": "red"}, "extra_forbidden"),
    ],
)
def test_bad_actions_are_refused_on_save_with_the_reason(raw: dict[str, Any], type_: str) -> None:
    error = _invalid([raw])
    assert error.code == "invalid_action"
    assert type_ in {e["type"] for e in error.details}


def test_ai_generate_is_available_and_checks_its_task_on_save() -> None:
    # Given the two tasks, the email id defaulting to the event's
    actions = parse_actions([{"type": "ai.generate"}, {"type": "ai.generate", "task": "summary"}])
    assert [(a.task, a.email_id) for a in actions] == [  # type: ignore[union-attr]
        ("reply_suggestions", "{{email_id}}"),
        ("summary", "{{email_id}}"),
    ]
    assert action_schemas()["ai.generate"]["x-available"] is True
    # And another task, or the placeholder's free prompt, is refused
    assert _invalid([{"type": "ai.generate", "task": "poem"}]).code == "invalid_action"
    assert (
        _invalid([{"type": "ai.generate", "prompt": "Summarize {{email.subject}}"}]).code == "invalid_action"
    )


def test_ai_generate_renders_the_email_id_and_refuses_what_is_not_one() -> None:
    from mailbridge.automations.actions import AiGenerateAction, build_ai_generate

    (action,) = parse_actions([{"type": "ai.generate", "task": "summary"}])
    assert isinstance(action, AiGenerateAction)
    email_id = "em_" + "a" * 26
    built = build_ai_generate(action, RenderContext(data={"email_id": email_id}, now=CONTEXT.now))
    assert (built.task, built.email_id) == ("summary", email_id)
    with pytest.raises(ActionError) as refused:
        build_ai_generate(action, RenderContext(data={"email_id": "em_../x"}, now=CONTEXT.now))
    assert refused.value.code == "invalid_action"


def test_every_action_has_a_json_schema_for_the_rule_builder() -> None:
    schemas = action_schemas()
    assert (
        set(schemas)
        == set(ACTION_MODELS)
        == {
            "email.send",
            "task.create",
            "deal.update",
            "webhook.publish",
            "http.openapi",
            "queue.enqueue",
            "message.post",
            "analytics.track",
            "ai.generate",
        }
    )
    for name, schema in schemas.items():
        assert schema["properties"]["type"]["const"] == name
        json.dumps(schema)
    # and every example in a schema is itself a valid action
    examples = [e for s in schemas.values() for e in s.get("examples", [])]
    assert len(parse_actions(examples)) == len(examples) == 10


def test_deal_update_builds_a_crm_patch() -> None:
    (action,) = parse_actions(
        [{"type": "deal.update", "fields": {"stage": "Qualified", "amount": "{{deal.amount}}"}}]
    )
    assert isinstance(action, DealUpdateAction)
    deal_id, patch = build_deal_update(action, CONTEXT)
    assert deal_id == DEAL_ID
    assert patch.model_dump(exclude_unset=True) == {"stage": "qualified", "amount": pytest.approx(12500.5)}


def test_deal_update_refuses_a_rendered_id_that_is_not_a_deal() -> None:
    (action,) = parse_actions(
        [{"type": "deal.update", "deal_id": "{{contact.contact_id}}", "fields": {"stage": "x"}}]
    )
    with pytest.raises(ActionError):
        build_deal_update(action, CONTEXT)  # type: ignore[arg-type]


def test_webhook_publish_signs_the_rendered_payload_with_the_delivery_id() -> None:
    (action,) = parse_actions(
        [
            {
                "type": "webhook.publish",
                "url": "https://hooks.example.com/in",
                "secret_ref": "crm-hook",
                "payload": {"email": "{{contact.email}}", "n": 1},
            }
        ]
    )
    assert isinstance(action, WebhookPublishAction)
    request = build_webhook(
        action, CONTEXT, endpoint_secrets=[SECRET], delivery_id="run1:0", event_type="contact.created"
    )
    assert json.loads(request.body) == {"email": "ada@example.com", "n": 1}
    now = int(NOW.timestamp())
    assert verify_webhook(body=request.body, headers=request.headers, secret=SECRET, now=now) == "run1:0"


@pytest.mark.parametrize(
    ("url", "type_"),
    [
        ("http://hooks.example.com/in", "insecure_url"),
        ("ftp://hooks.example.com/in", "invalid_url"),
        ("https://user:pw@hooks.example.com/in", "invalid_url"),
        ("https:///in", "invalid_url"),
        ("https://hooks.example.com:99999/in", "invalid_url"),
        ("https://hooks.example.com/in\r\nX: y", "invalid_url"),
    ],
)
def test_outbound_urls_are_https_with_a_host(url: str, type_: str) -> None:
    error = _invalid([{"type": "message.post", "url": url, "text": "x"}])
    assert type_ in {e["type"] for e in error.details}


def test_http_to_a_loopback_literal_is_accepted_for_local_development() -> None:
    (action,) = parse_actions([{"type": "message.post", "url": "http://127.0.0.1:8080/hook", "text": "x"}])
    assert isinstance(action, MessagePostAction)


def test_message_post_sends_text_json() -> None:
    (action,) = parse_actions(
        [{"type": "message.post", "url": "https://hooks.slack.com/x", "text": "New: {{contact.email}}"}]
    )
    post = build_message_post(action, CONTEXT)  # type: ignore[arg-type]
    assert json.loads(post.body) == {"text": "New: ada@example.com"}


def test_queue_enqueue_renders_the_message_and_bounds_it() -> None:
    (action,) = parse_actions(
        [{"type": "queue.enqueue", "queue": "leads", "message": {"e": "{{contact.email}}"}}]
    )
    assert isinstance(action, QueueEnqueueAction)
    assert json.loads(build_queue_message(action, CONTEXT).body) == {"e": "ada@example.com"}
    big = RenderContext(data={"blob": "x" * 90_000}, now=NOW)
    (whole,) = parse_actions([{"type": "queue.enqueue", "queue": "leads", "message": ["{{blob}}"] * 3}])
    with pytest.raises((ActionError, TemplateError)):
        build_queue_message(whole, big)  # type: ignore[arg-type]


def test_http_openapi_renders_parameters_and_body() -> None:
    (action,) = parse_actions(
        [
            {
                "type": "http.openapi",
                "document_id": "billing",
                "operation_id": "createCustomer",
                "parameters": {"email": "{{contact.email}}"},
                "body": {"tags": ["{{contact.tags.0}}"]},
            }
        ]
    )
    assert isinstance(action, HttpOpenApiAction)
    call = build_openapi_call(action, CONTEXT)
    assert (call.parameters, call.body) == ({"email": "ada@example.com"}, {"tags": ["new-lead"]})


def test_analytics_track_renders_a_numeric_value_and_dimensions() -> None:
    (action,) = parse_actions(
        [
            {
                "type": "analytics.track",
                "metric": "deals.value",
                "value": "{{deal.amount}}",
                "dimensions": {"source": "{{contact.source}}"},
            }
        ]
    )
    assert isinstance(action, AnalyticsTrackAction)
    point = build_metric(action, CONTEXT)
    assert (point.value, point.dimensions) == (12500.5, {"source": "web"})
    (bad,) = parse_actions([{"type": "analytics.track", "metric": "m", "value": "{{contact.email}}"}])
    with pytest.raises(ActionError):
        build_metric(bad, CONTEXT)  # type: ignore[arg-type]


def test_a_rule_has_at_most_twenty_actions() -> None:
    assert _invalid([WELCOME[1]] * 21).code == "invalid_action"
