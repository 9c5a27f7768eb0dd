"""Email templates through the api function on moto: versions, validation on save, preview with a
CRM contact, `POST /emails/send` with `template_id` rendered per recipient, and the A/B stats."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.tracking import DynamoTrackingStore
from mailbridge.tracking.models import Classification, Evidence, Hit
from tests.events import load_event
from tests.fixtures.accounts import seed_account
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT = "acme"
TEMPLATE: dict[str, Any] = json.loads(load_event("api/templates-create.json")["body"])


class Api:
    def __init__(self, invoke: Invoke) -> None:
        self.invoke = invoke

    def call(
        self,
        name: str,
        status: int,
        *,
        role: str = "member",
        tenant: str = TENANT,
        path: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        event = load_event(f"api/{name}.json", tenant=tenant, role=role, body=body)
        if path is not None:
            raw = event["routeKey"].split(" ", 1)[1]
            for key, value in path.items():
                raw = raw.replace("{" + key + "}", value)
            event["pathParameters"] = dict(path)
            event["rawPath"] = event["requestContext"]["http"]["path"] = raw
        response = self.invoke(event)
        assert response["statusCode"] == status, response
        return json.loads(response["body"]) if response.get("body") else None

    def create(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call("templates-create", 201, body=body or TEMPLATE)
        return result


@pytest.fixture
def api(invoke_api: Invoke) -> Api:
    return Api(invoke_api)


def _account(stack: Stack, display_name: str = "Alice Example") -> str:
    env = stack.env("ApiFunction")
    return seed_account(
        env["ACCOUNTS_TABLE"], env["DATA_KEY_ID"], tenant=TENANT, display_name=display_name
    ).account_id


def _ada(api: Api) -> str:
    company = api.call(
        "crm-create-company", 201, body={"name": "Analytical Engines", "domains": ["engines.example"]}
    )
    contact = api.call(
        "crm-create-contact",
        201,
        body={
            "name": "Ada Lovelace",
            "emails": [{"address": "ada@engines.example", "primary": True}],
            "company_id": company["company_id"],
            "custom": {"plan": "pro"},
        },
    )
    return str(contact["contact_id"])


# ------------------------------------------------------------------------------------- versions
def test_every_save_is_an_immutable_version(api: Api) -> None:
    # Given a template saved, then changed
    created = api.create()
    template_id = created["template_id"]
    changed = api.call(
        "templates-put",
        200,
        path={"template_id": template_id},
        body={**TEMPLATE, "subject": "New", "version": 1},
    )
    # When its versions are read
    versions = api.call("templates-versions", 200, role="viewer", path={"template_id": template_id})
    first = api.call(
        "templates-get-version", 200, role="viewer", path={"template_id": template_id, "version": "1"}
    )
    latest = api.call("templates-get", 200, role="viewer", path={"template_id": template_id})
    # Then both saves are kept as they were, and the template is at version 2
    assert (created["version"], changed["version"], latest["version"]) == (1, 2, 2)
    assert [(v["version"], v["subject"]) for v in versions["items"]] == [(1, TEMPLATE["subject"]), (2, "New")]
    assert first["subject"] == TEMPLATE["subject"]
    assert [{k: v for k, v in variant.items() if v is not None} for variant in first["variants"]] == TEMPLATE[
        "variants"
    ]


def test_a_stale_version_is_a_conflict(api: Api) -> None:
    # Given a template saved twice
    template_id = api.create()["template_id"]
    api.call("templates-put", 200, path={"template_id": template_id}, body={**TEMPLATE, "version": 1})
    # When someone saves over version 1 again
    answer = api.call(
        "templates-put", 409, path={"template_id": template_id}, body={**TEMPLATE, "version": 1}
    )
    # Then it is refused with the current version
    assert answer["error"]["code"] == "version_conflict"
    assert answer["error"]["details"] == {"current_version": 2}


def test_a_template_that_does_not_parse_is_a_422_with_its_line(api: Api) -> None:
    # Given a text body whose second line has a loop (outside the sandbox's subset)
    body = {**TEMPLATE, "text": "Hi\n{% for x in contact.tags %}{{ x }}{% endfor %}"}
    # When it is saved
    answer = api.call("templates-create", 422, body=body)
    # Then the answer names the part and the line, and nothing is stored
    assert answer["error"]["code"] == "template_invalid"
    assert answer["error"]["details"] == {"field": "text", "line": 2, "reason": "invalid_template"}
    assert api.call("templates-list", 200, role="viewer")["items"] == []


def test_a_sandbox_escape_is_refused_on_save(api: Api) -> None:
    answer = api.call("templates-create", 422, body={**TEMPLATE, "html": "{{ ''.__class__.__mro__ }}"})
    assert answer["error"]["code"] == "template_invalid"
    assert answer["error"]["details"]["reason"] == "private_name"


def test_splits_must_sum_to_100(api: Api) -> None:
    variants = [{"name": "A", "split": 50}, {"name": "B", "split": 40}]
    answer = api.call("templates-create", 422, body={**TEMPLATE, "variants": variants})
    assert answer["error"]["code"] == "validation_error"


def test_a_viewer_cannot_save_and_a_deleted_template_is_gone(api: Api) -> None:
    # Given a template
    template_id = api.create()["template_id"]
    # When a viewer tries to save one, and a member deletes it
    denied = api.call("templates-create", 403, role="viewer", body=TEMPLATE)
    api.call("templates-delete", 200, path={"template_id": template_id})
    # Then the viewer was refused and the template is not found any more
    assert denied["error"]["code"] == "role_required"
    gone = api.call("templates-get", 404, role="viewer", path={"template_id": template_id})
    assert gone["error"]["code"] == "template_not_found"


def test_another_tenant_does_not_see_a_template(api: Api) -> None:
    template_id = api.create()["template_id"]
    answer = api.call("templates-get", 404, tenant="globex", role="viewer", path={"template_id": template_id})
    assert answer["error"]["code"] == "template_not_found"


# ------------------------------------------------------------------------------------- preview
def test_preview_with_a_contact_reads_the_crm_and_reports_defaults(api: Api) -> None:
    # Given a contact of a company, and the sample template
    contact_id = _ada(api)
    template_id = api.create()["template_id"]
    # When it is previewed for the contact, in variant A
    rendered = api.call(
        "templates-preview",
        200,
        role="viewer",
        path={"template_id": template_id},
        body={"contact_id": contact_id, "variant": "A"},
    )
    # Then the contact's values fill it, and the missing `offer` took its declared default
    assert rendered["subject"] == "Ada, how is Analytical Engines finding the trial?"
    assert rendered["text"] == "Hi Ada,\n\nShall we talk this week?\n\nThe team"
    assert rendered["defaulted"] == ["offer"]
    assert (rendered["variant"], rendered["version"]) == ("A", 1)


def test_preview_of_an_older_version_with_sample_data(api: Api) -> None:
    # Given a template changed once
    template_id = api.create()["template_id"]
    api.call(
        "templates-put",
        200,
        path={"template_id": template_id},
        body={**TEMPLATE, "subject": "v2", "version": 1},
    )
    # When version 1 is previewed with sample data holding markup
    data = {"contact": {"first_name": "<i>Ada</i>"}, "company": {"name": "X"}, "offer": "Hi & bye"}
    rendered = api.call(
        "templates-preview", 200, path={"template_id": template_id}, body={"data": data, "version": 1}
    )
    # Then version 1's subject shows, the HTML escapes the values and the text does not
    assert rendered["subject"] == "<i>Ada</i>, how is X finding the trial?"
    assert "<p>Hi &lt;i&gt;Ada&lt;/i&gt;,</p><p>Hi &amp; bye</p>" in rendered["html"]
    assert rendered["text"].startswith("Hi <i>Ada</i>,\n\nHi & bye")


def test_preview_that_cannot_render_names_the_variable(api: Api) -> None:
    # Given a template needing an undeclared value
    body = {**TEMPLATE, "variants": [], "text": "Your plan: {{ contact.custom.plan }}"}
    template_id = api.create(body)["template_id"]
    # When previewed with data lacking it
    answer = api.call(
        "templates-preview",
        422,
        path={"template_id": template_id},
        body={"data": {"contact": {"first_name": "A"}}},
    )
    # Then it is a 422 naming it
    assert answer["error"]["code"] == "template_render_failed"
    assert answer["error"]["details"] == {
        "field": "text",
        "variable": "contact.custom.plan",
        "reason": "undefined_variable",
    }


def test_preview_for_a_contact_id_that_is_not_one_is_a_422_naming_it(api: Api) -> None:
    # Given a template
    template_id = api.create()["template_id"]
    for contact_id in ("ct_x\r\nBcc: x@evil.example", "a\x00b", "a\u2028b", "ct_" + "0" * 27):
        # When it is previewed for a contact_id that cannot name a contact
        answer = api.call(
            "templates-preview", 422, path={"template_id": template_id}, body={"contact_id": contact_id}
        )
        # Then 422 validation_error naming the field (not 404 contact_not_found, as an unknown id is)
        assert answer["error"]["code"] == "validation_error", contact_id
        assert [d["loc"][-1] for d in answer["error"]["details"]] == ["contact_id"], contact_id


# ------------------------------------------------------------------------------------- sending
def _stored(stack: Stack, email_id: str) -> tuple[dict[str, Any], email.message.EmailMessage]:
    env = stack.env("ApiFunction")
    item = EmailStore(env["EMAILS_TABLE"]).get_email(TENANT, email_id)
    assert item is not None
    raw = BlobStore(env["MAIL_BUCKET"]).get(str(item["raw_key"]))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return item, message


def _text(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_send_with_a_template_renders_for_each_recipient(api: Api, stack: Stack) -> None:
    # Given a contact, a template and a mailbox
    _ada(api)
    template = api.create()
    account_id = _account(stack)
    # When it is sent to the contact and to an address no contact has
    accepted = api.call(
        "send-email",
        202,
        body={
            "account_id": account_id,
            "to": [{"address": "ada@engines.example"}, {"address": "bob@elsewhere.example"}],
            "template_id": template["template_id"],
            "variables": {"offer": "A call on Tuesday?"},
        },
    )
    # Then one email per recipient is queued, each rendered for its recipient
    assert [r["address"] for r in accepted["recipients"]] == ["ada@engines.example", "bob@elsewhere.example"]
    ada, ada_message = _stored(stack, accepted["recipients"][0]["email_id"])
    bob, bob_message = _stored(stack, accepted["recipients"][1]["email_id"])
    assert [str(a) for a in ada_message["To"].addresses] == ["ada@engines.example"]
    assert _text(ada_message).startswith("Hi Ada,\n\nA call on Tuesday?\n\nAlice Example")
    assert _text(bob_message).startswith("Hi there,\n\nA call on Tuesday?")
    # And the version and the recipient's variant are stored on each email
    for item, row in ((ada, accepted["recipients"][0]), (bob, accepted["recipients"][1])):
        assert item["template"]["template_id"] == template["template_id"]
        assert int(item["template"]["version"]) == 1
        assert item["template"]["variant"] == row["template"]["variant"]
    subject = {"A": "Ada, how is Analytical Engines finding the trial?", "B": "Quick question, Ada"}
    assert ada_message["Subject"] == subject[ada["template"]["variant"]]
    # And GET /emails/{id} shows them
    shown = api.call(
        "get-email", 200, role="viewer", path={"email_id": accepted["recipients"][0]["email_id"]}
    )
    assert shown["template"] == accepted["recipients"][0]["template"]
    assert shown["template"]["version"] == 1


def test_send_of_a_named_version(api: Api, stack: Stack) -> None:
    # Given a template at version 2 whose version 1 had another text
    template_id = api.create({**TEMPLATE, "variants": []})["template_id"]
    api.call(
        "templates-put",
        200,
        path={"template_id": template_id},
        body={**TEMPLATE, "variants": [], "text": "Version two", "version": 1},
    )
    # When version 1 is sent
    accepted = api.call(
        "send-email",
        202,
        body={
            "account_id": _account(stack),
            "to": [{"address": "bob@elsewhere.example"}],
            "template_id": template_id,
            "template_version": 1,
        },
    )
    # Then version 1 went out and is recorded
    item, message = _stored(stack, accepted["email_id"])
    assert _text(message).startswith("Hi there,")
    assert (int(item["template"]["version"]), item["template"].get("variant")) == (1, None)


def test_a_recipient_that_cannot_be_rendered_queues_nothing(api: Api, stack: Stack) -> None:
    # Given a template whose subject reads a custom field only Ada has
    _ada(api)
    body = {**TEMPLATE, "variants": [], "subject": "Your {{ contact.custom.plan }} plan"}
    template_id = api.create(body)["template_id"]
    account_id = _account(stack)
    # When it is sent to Ada and to someone without a contact
    answer = api.call(
        "send-email",
        422,
        body={
            "account_id": account_id,
            "to": [{"address": "ada@engines.example"}, {"address": "bob@elsewhere.example"}],
            "template_id": template_id,
        },
    )
    # Then the answer names the recipient and the variable, and no email was stored
    assert answer["error"]["code"] == "template_render_failed"
    assert answer["error"]["details"]["recipient"] == 1
    assert answer["error"]["details"]["variable"] == "contact.custom.plan"
    items = stack.table("EmailsTable").scan()["Items"]
    assert [i for i in items if i.get("send_status")] == []


def test_a_variable_with_a_header_break_in_the_subject_is_a_422(api: Api, stack: Stack) -> None:
    template_id = api.create({**TEMPLATE, "variants": [], "subject": "About {{ topic }}"})["template_id"]
    answer = api.call(
        "send-email",
        422,
        body={
            "account_id": _account(stack),
            "to": [{"address": "bob@elsewhere.example"}],
            "template_id": template_id,
            "variables": {"topic": "x\r\nBcc: victim@example.com"},
        },
    )
    assert answer["error"]["details"]["variable"] == "topic"
    assert answer["error"]["details"]["reason"] == "header_injection"


@pytest.mark.parametrize(
    "extra",
    [
        {"subject": "Hi"},
        {"cc": [{"address": "x@example.com"}]},
        {"variables": {"contact": "x"}},
        {"to": [{"address": f"p{i}@elsewhere.example"} for i in range(51)]},
    ],
)
def test_template_sends_refuse_what_does_not_go_with_them(
    api: Api, stack: Stack, extra: dict[str, Any]
) -> None:
    body = {
        "account_id": _account(stack),
        "to": [{"address": "bob@elsewhere.example"}],
        "template_id": "tpl_5f0c1d2e3a4b5c6d7e8f",
    } | extra
    answer = api.call("send-email", 422, body=body)
    assert answer["error"]["code"] == "validation_error"


def test_an_unknown_template_is_a_404(api: Api, stack: Stack) -> None:
    body = {
        "account_id": _account(stack),
        "to": [{"address": "bob@elsewhere.example"}],
        "template_id": "tpl_5f0c1d2e3a4b5c6d7e8f",
    }
    assert api.call("send-email", 404, body=body)["error"]["code"] == "template_not_found"


# ------------------------------------------------------------------------------------- stats
def _reply(stack: Stack, sent: dict[str, Any], *, auto: bool = False) -> None:
    """An inbound email later in the sent email's thread (what the sync would store)."""
    later = (datetime.fromisoformat(str(sent["date"])) + timedelta(hours=2)).isoformat()
    item = {
        k: v
        for k, v in sent.items()
        if k not in ("pk", "sk", "version", "send_status", "gsi6pk", "gsi6sk", "template")
    }
    email_id = "em_" + uuid.uuid4().hex[:26]
    item |= {
        "email_id": email_id,
        "direction": "inbound",
        "date": later,
        "gsi2sk": f"{later}#{email_id}",
        "message_id": f"{email_id}@elsewhere.example",
    }
    if auto:
        item["auto_submitted"] = "auto-replied"
    assert EmailStore(stack.env("ApiFunction")["EMAILS_TABLE"]).create_email(TENANT, item)


def _click(stack: Stack, email_id: str, classification: Classification = "human") -> None:
    store = DynamoTrackingStore(stack.env("ApiFunction")["TRACKING_TABLE"])
    hit = Hit(
        hit_id=uuid.uuid4().hex,
        email_id=email_id,
        kind="click",
        link=0,
        at=datetime.now(UTC),
        evidence=Evidence(method="GET", user_agent="Mozilla/5.0", seconds_since_delivery=3600.0),
        classification=classification,
        reasons=["test"],
    )
    store.put_hit(TENANT, hit, expires=datetime.now(UTC) + timedelta(days=1))


def test_stats_count_sends_replies_and_human_clicks_per_variant(api: Api, stack: Stack) -> None:
    # Given a 50/50 template sent to six people, three in each half of the split (the template id
    # is new each run: people picked by the documented bucket, so no run leaves a variant empty)
    template_id = api.create()["template_id"]

    def bucket(address: str) -> int:
        digest = hashlib.sha256(f"{template_id}\x00{address}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % 100

    people = [f"person{i}@elsewhere.example" for i in range(200)]
    chosen = [p for p in people if bucket(p) < 50][:3] + [p for p in people if bucket(p) >= 50][:3]
    accepted = api.call(
        "send-email",
        202,
        body={
            "account_id": _account(stack),
            "to": [{"address": p} for p in chosen],
            "template_id": template_id,
        },
    )
    rows = accepted["recipients"]
    by_variant = {name: [r for r in rows if r["template"]["variant"] == name] for name in ("A", "B")}
    assert by_variant["A"]
    assert by_variant["B"]
    # And the first of variant A answered, the first of B only sent an out-of-office reply,
    # a security scanner clicked A's link and a person B's
    first_a, _ = _stored(stack, by_variant["A"][0]["email_id"])
    first_b, _ = _stored(stack, by_variant["B"][0]["email_id"])
    _reply(stack, first_a)
    _reply(stack, first_b, auto=True)
    _click(stack, by_variant["A"][0]["email_id"], "scanner")
    _click(stack, by_variant["B"][0]["email_id"])
    # When the stats are read
    stats = api.call("templates-stats", 200, role="viewer", path={"template_id": template_id})
    # Then each variant shows its counts, and no winner on so small a sample
    got = {row["variant"]: (row["sent"], row["replies"], row["human_clicks"]) for row in stats["variants"]}
    assert got == {"A": (len(by_variant["A"]), 1, 0), "B": (len(by_variant["B"]), 0, 1)}
    a_row = next(row for row in stats["variants"] if row["variant"] == "A")
    assert a_row["reply_rate"] == pytest.approx(1 / len(by_variant["A"]))
    assert (stats["winner"], stats["reason"]) == (None, "not_enough_data")
