"""Bedrock where an LLM earns it (issue 14 point 4) in-process on moto, with the product's boto3
`bedrock-runtime` client talking to the local Converse double (local/bedrock) through the
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME` setting: the per-tenant setting, unsure-only routing, the
fallback on each error kind, the daily token budget, and lead fields the rules did not find.
The double's request list is what reached the network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.bedrock import BedrockDouble
from local.bedrock.double import tokens
from mailbridge.ai import wiring
from mailbridge.ai.bedrock import MAX_ANSWER_TOKENS, MAX_PROMPT_CHARS, PAUSE_SECONDS
from mailbridge.ai.service import categorize_stored
from tests.fixtures.aws import Stack
from tests.integration.test_ai_categorize import fixture, set_ai, stored
from tests.integration.test_api_emails import Seeder, api, body, rfc

Invoke = Any

UNSURE = rfc(
    msgid="unsure-1@northwind.example",
    sender="Kim Lee <kim.lee@northwind.example>",
    to="sam@shop.test",
    subject="March",
    date="Tue, 03 Mar 2026 10:00:00 +0000",
    text="Hello Sam,\r\n\r\nthe invoice for March is attached now.\r\n\r\nKim\r\n",
)
"""Local answer: `other`, confidence below 0.6 (one finance word is not enough for the rules)."""


def unsure_email(n: int, text: str | None = None) -> bytes:
    """Another unsure email (its own Message-ID), optionally with another body."""
    raw = UNSURE.replace(b"unsure-1@", f"unsure-{n}@".encode())
    if text is not None:
        raw = raw.replace(b"the invoice for March is attached now.", text.encode())
    return raw


@pytest.fixture(scope="module")
def double() -> Iterator[BedrockDouble]:
    with BedrockDouble() as running:
        yield running


@pytest.fixture
def bedrock(stack: Stack, double: BedrockDouble, monkeypatch: pytest.MonkeyPatch) -> BedrockDouble:
    """The double, emptied, as the functions' bedrock-runtime endpoint; the tenant's ai flag on."""
    double.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", double.base_url)
    wiring.reset()
    return double


def put_bedrock(invoke_api: Invoke, role: str = "admin", **values: Any) -> dict[str, Any]:
    return invoke_api(api("ai-put-bedrock", role=role, body=values))  # type: ignore[no-any-return]


def status(invoke_api: Invoke) -> dict[str, Any]:
    response = invoke_api(api("ai-get-bedrock"))
    assert response["statusCode"] == 200, response
    return body(response)  # type: ignore[no-any-return]


def switch_on(invoke_api: Invoke, **values: Any) -> None:
    set_ai(invoke_api, True)
    response = put_bedrock(invoke_api, enabled=True, **values)
    assert response["statusCode"] == 200, response


def categorize(invoke_api: Invoke, email_id: str) -> dict[str, Any]:
    response = invoke_api(api("ai-categorize-email", body={"email_id": email_id}))
    assert response["statusCode"] == 200, response
    return body(response)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------- setting


def test_the_setting_is_off_by_default_and_off_means_no_bedrock_call(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given a tenant with the ai flag on that never saved a Bedrock setting, and an unsure email
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(UNSURE)
    # When the email is categorized and a lead is extracted from it
    result = categorize(invoke_api, email_id)
    lead = invoke_api(api("ai-extract-lead", body={"email_id": email_id}))
    # Then the local answers stand, and not one request reached Bedrock
    assert result["category"] == "other"
    assert not [r for r in result["reasons"] if r.startswith("bedrock:")]
    assert body(lead)["bedrock"] is None
    assert bedrock.requests == []
    # And the setting reads as off, with the template's model and no usage
    state = status(invoke_api)
    assert state["status"] == "off"
    assert state["setting"]["enabled"] is False
    assert state["effective_model_id"] == "anthropic.claude-3-haiku-20240307-v1:0"
    assert state["usage"]["calls"] == 0


def test_only_admins_change_the_setting_and_bad_values_are_refused(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given a tenant with the ai flag on
    set_ai(invoke_api, True)
    # When a member tries to switch Bedrock on
    refused = put_bedrock(invoke_api, role="member", enabled=True)
    # Then it is 403 role_required and nothing changed
    assert refused["statusCode"] == 403
    assert body(refused)["error"]["code"] == "role_required"
    assert status(invoke_api)["setting"]["enabled"] is False
    # When an admin sends values Bedrock would refuse
    for bad in (
        {"model_id": "no spaces allowed"},
        {"region": "mars-1"},
        {"daily_token_budget": -1},
        {"monthly_token_budget": -1},
        {"x": 1},
        # null has no default to go back to for these (found by the contract test: it was
        # stored, and answered as null where the document promises a boolean or an integer)
        {"enabled": None},
        {"daily_token_budget": None},
        {"monthly_token_budget": None},
    ):
        response = put_bedrock(invoke_api, **bad)
        # Then each is a 4xx with a code, never a 5xx
        assert 400 <= response["statusCode"] < 500, (bad, response)
        assert body(response)["error"]["code"], bad
    assert status(invoke_api)["setting"]["enabled"] is False
    # When an admin switches it on with a model, a region and a budget
    response = put_bedrock(
        invoke_api,
        enabled=True,
        model_id="eu.amazon.nova-lite-v1:0",
        region="eu-west-1",
        daily_token_budget=5000,
        monthly_token_budget=90000,
    )
    # Then that is what the tenant reads back, with the status on
    assert response["statusCode"] == 200, response
    state = status(invoke_api)
    assert state["status"] == "on"
    assert state["setting"] == {
        "enabled": True,
        "model_id": "eu.amazon.nova-lite-v1:0",
        "region": "eu-west-1",
        "daily_token_budget": 5000,
        "monthly_token_budget": 90000,
    }
    assert state["effective_model_id"] == "eu.amazon.nova-lite-v1:0"


# ---------------------------------------------------------------------------------- routing


def test_only_mail_the_local_model_is_unsure_about_goes_to_bedrock(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on, a customer question the local path is sure of and an unsure email
    switch_on(invoke_api, model_id="amazon.nova-micro-v1:0")
    seed = Seeder(stack)
    sure_id = seed.add(fixture("support_question.eml"))
    unsure_id = seed.add(UNSURE)
    # When both are categorized
    sure = categorize(invoke_api, sure_id)
    unsure = categorize(invoke_api, unsure_id)
    # Then the sure one is the local answer, and only the unsure one was sent, to the tenant's model
    assert sure["category"] == "support"
    assert not [r for r in sure["reasons"] if r.startswith("bedrock:")]
    assert [r.model_id for r in bedrock.requests] == ["amazon.nova-micro-v1:0"]
    # And Bedrock's answer decides it, named first in the reasons, and is stored on the email
    assert unsure["category"] == "finance"
    assert unsure["confidence"] == 0.9
    assert unsure["reasons"][0] == "bedrock:finance"
    assert stored(stack, unsure_id)["category"] == "finance"
    # And the call's tokens (Converse usage) are counted for the tenant's day
    sent = bedrock.requests[0].text
    usage = status(invoke_api)["usage"]
    assert usage["calls"] == 1
    assert usage["input_tokens"] == tokens(sent)
    assert usage["output_tokens"] == tokens('{"category": "finance", "confidence": 0.9}')


def test_the_answer_is_asked_for_through_a_tool_with_the_answer_models_schema(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on and an unsure email
    switch_on(invoke_api)
    email_id = Seeder(stack).add(UNSURE)
    # When it is categorized
    categorize(invoke_api, email_id)
    # Then the Converse request carries one tool, with the answer's JSON schema, and makes the model call it
    config = bedrock.requests[0].body["toolConfig"]
    [tool] = config["tools"]
    assert tool["toolSpec"]["name"] == "CategoryAnswer"
    assert tool["toolSpec"]["description"]
    schema = tool["toolSpec"]["inputSchema"]["json"]
    assert schema["required"] == ["category", "confidence"]
    assert "finance" in schema["properties"]["category"]["enum"]
    assert config["toolChoice"] == {"tool": {"name": "CategoryAnswer"}}


def test_a_model_without_tool_choice_falls_back_as_an_invalid_request(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on with a model Bedrock serves that does not take toolChoice.tool
    switch_on(invoke_api, model_id="mistral.mistral-small-2402-v1:0")
    email_id = Seeder(stack).add(UNSURE)
    # When an unsure email is categorized
    result = categorize(invoke_api, email_id)
    # Then Bedrock's ValidationException leaves the local answer, once (not retried)
    assert result["category"] == "other"
    assert result["reasons"][-1] == "bedrock:fallback:invalid_request"
    assert len(bedrock.requests) == 1


def test_the_categorize_consumer_asks_bedrock_too(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on and an unsure email
    switch_on(invoke_api)
    email_id = Seeder(stack).add(UNSURE)
    # When the categorize function's run (email.received) categorizes it
    outcome, _ = categorize_stored("acme", email_id, "categorize:email.received:x", wiring.categorize_deps())
    # Then Bedrock's category is stored
    assert outcome.category == "finance"
    assert stored(stack, email_id)["reasons"][0] == "bedrock:finance"
    assert len(bedrock.requests) == 1


def test_the_body_sent_is_truncated_and_scrubbed(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on and an unsure email with an address, a phone, card and IBAN, a long body
    switch_on(invoke_api)
    text = (
        "please call me on +44 20 7946 0958 or write to kim.private@home.example, card "
        "4111 1111 1111 1111, account GB82 WEST 1234 5698 7654 32. " + "blah " * 3000
    )
    email_id = Seeder(stack).add(unsure_email(2, text))
    # When it is categorized
    categorize(invoke_api, email_id)
    # Then the prompt holds at most MAX_PROMPT_CHARS of the body, without the address or number
    sent = bedrock.requests[0].text
    assert len(sent) < MAX_PROMPT_CHARS + 1000
    assert "kim.private@home.example" not in sent
    assert "7946" not in sent
    assert "4111" not in sent
    assert "GB82" not in sent
    assert "me on [PHONE_1] or write to [EMAIL_1], card [CARD_1], account [IBAN_1]." in sent


# ---------------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize(
    ("error", "times", "reason"),
    [
        ("ThrottlingException", 3, "throttled"),
        ("ModelTimeoutException", 1, "timeout"),
        ("AccessDeniedException", 1, "access_denied"),
        ("ValidationException", 1, "invalid_request"),
        ("ServiceUnavailableException", 3, "unavailable"),
    ],
)
def test_a_bedrock_error_falls_back_to_the_local_answer_and_records_why(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble, error: str, times: int, reason: str
) -> None:
    # Given Bedrock switched on and answering `error` (to every retry of a retryable one)
    switch_on(invoke_api)
    email_id = Seeder(stack).add(UNSURE)
    bedrock.fail(error, times)
    # When an unsure email is categorized
    result = categorize(invoke_api, email_id)
    # Then the answer is the local one (200, never a 5xx), naming why Bedrock's is missing
    assert result["category"] == "other"
    assert result["reasons"][-1] == f"bedrock:fallback:{reason}"
    # And retryable errors were retried (3 attempts), the others not
    assert len(bedrock.requests) == times
    # And the day's usage counts the fallback by its reason
    assert status(invoke_api)["usage"]["fallbacks"] == {reason: 1}


def test_a_text_answer_or_a_tool_input_that_fails_the_schema_falls_back(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on and answering text (even JSON text) instead of calling the tool,
    # then a tool input with a category that does not exist
    switch_on(invoke_api)
    seed = Seeder(stack)
    first, second = seed.add(UNSURE), seed.add(unsure_email(3))
    bedrock.script('{"category": "finance", "confidence": 0.9}', {"category": "invoices", "confidence": 0.8})
    # When both are categorized
    results = [categorize(invoke_api, first), categorize(invoke_api, second)]
    # Then both keep the local answer, with the reason invalid_answer
    assert [r["category"] for r in results] == ["other", "other"]
    assert [r["reasons"][-1] for r in results] == ["bedrock:fallback:invalid_answer"] * 2
    # And the tokens the model used are counted all the same
    usage = status(invoke_api)["usage"]
    assert usage["fallbacks"] == {"invalid_answer": 2}
    assert usage["output_tokens"] > 0


def test_a_model_id_bedrock_does_not_know_falls_back_as_an_invalid_request(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on with a well-formed model id that Bedrock does not serve
    switch_on(invoke_api, model_id="acme.unknown-model-v9:0")
    email_id = Seeder(stack).add(UNSURE)
    # When an unsure email is categorized
    result = categorize(invoke_api, email_id)
    # Then Bedrock's ValidationException leaves the local answer, once (not retried)
    assert result["category"] == "other"
    assert result["reasons"][-1] == "bedrock:fallback:invalid_request"
    assert [r.model_id for r in bedrock.requests] == ["acme.unknown-model-v9:0"]


def test_an_answer_cut_off_at_max_tokens_falls_back(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on, answering more than the call's maxTokens allow
    switch_on(invoke_api)
    email_id = Seeder(stack).add(UNSURE)
    # (a valid input: only the stopReason tells it was cut)
    bedrock.script({"category": "finance", "confidence": 0.9, "why": "because it is " * 200})
    # When an unsure email is categorized
    result = categorize(invoke_api, email_id)
    # Then the cut-off answer (stopReason max_tokens) is not used
    assert result["category"] == "other"
    assert result["reasons"][-1] == "bedrock:fallback:invalid_answer"


def test_a_throttle_that_clears_within_the_retries_gives_bedrocks_answer(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on and throttling the first two attempts only
    switch_on(invoke_api)
    email_id = Seeder(stack).add(UNSURE)
    bedrock.fail("ThrottlingException", 2)
    # When an unsure email is categorized
    result = categorize(invoke_api, email_id)
    # Then the third attempt's answer decides
    assert result["category"] == "finance"
    assert len(bedrock.requests) == 3


def test_after_an_outage_answer_the_container_pauses_bedrock_then_asks_again(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on, a clock we move, and a call that failed as unavailable
    switch_on(invoke_api)
    seed = Seeder(stack)
    first, second, third = seed.add(UNSURE), seed.add(unsure_email(5)), seed.add(unsure_email(6))
    now = [1000.0]
    wiring.bedrock_deps().clock = lambda: now[0]
    bedrock.fail("ServiceUnavailableException", 3)
    assert categorize(invoke_api, first)["reasons"][-1] == "bedrock:fallback:unavailable"
    assert len(bedrock.requests) == 3
    # When the next unsure email is categorized within the pause
    now[0] += PAUSE_SECONDS - 1
    paused = categorize(invoke_api, second)
    # Then nothing is sent and the local answer says why
    assert len(bedrock.requests) == 3
    assert paused["reasons"][-1] == "bedrock:skipped:paused"
    assert status(invoke_api)["usage"]["fallbacks"] == {"unavailable": 1, "paused": 1}
    # When the pause is over
    now[0] += 2
    again = categorize(invoke_api, third)
    # Then Bedrock is asked again
    assert again["category"] == "finance"
    assert len(bedrock.requests) == 4


# ---------------------------------------------------------------------------------- budget


def test_the_daily_token_budget_stops_calls_with_a_clear_status(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on and one call made
    switch_on(invoke_api)
    seed = Seeder(stack)
    first, second = seed.add(UNSURE), seed.add(unsure_email(4, "the invoice for April is attached now."))
    categorize(invoke_api, first)
    assert len(bedrock.requests) == 1
    used = status(invoke_api)["usage"]
    spent = used["input_tokens"] + used["output_tokens"]
    # When the daily budget leaves less than one answer's tokens and the next unsure email comes
    assert put_bedrock(invoke_api, daily_token_budget=spent + MAX_ANSWER_TOKENS - 1)["statusCode"] == 200
    result = categorize(invoke_api, second)
    # Then no request is sent, the local answer stands and says why
    assert len(bedrock.requests) == 1
    assert result["category"] == "other"
    assert result["reasons"][-1] == "bedrock:skipped:budget_exhausted"
    # And the tenant reads the status budget_exhausted, with the stop counted
    state = status(invoke_api)
    assert state["status"] == "budget_exhausted"
    assert state["usage"]["fallbacks"] == {"budget_exhausted": 1}
    assert state["usage"]["calls"] == 1


def test_the_monthly_token_budget_stops_calls_too(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given one call made; the month counts what it used
    switch_on(invoke_api)
    seed = Seeder(stack)
    first, second = seed.add(UNSURE), seed.add(unsure_email(5, "the invoice for May is attached now."))
    categorize(invoke_api, first)
    month = status(invoke_api)["month_usage"]
    assert month["calls"] == 1
    spent = month["input_tokens"] + month["output_tokens"]
    assert spent > 0
    # When the monthly budget is what the month spent (the day's stays large)
    assert put_bedrock(invoke_api, monthly_token_budget=spent)["statusCode"] == 200
    result = categorize(invoke_api, second)
    # Then no request is sent and the status says the budget is used up
    assert len(bedrock.requests) == 1
    assert result["reasons"][-1] == "bedrock:skipped:budget_exhausted"
    assert status(invoke_api)["status"] == "budget_exhausted"


def test_a_reservation_that_would_pass_the_budget_is_refused_before_anything_is_spent(
    stack: Stack, bedrock: BedrockDouble
) -> None:
    from mailbridge.store.bedrock import BedrockStore, BudgetRefused

    store = BedrockStore(stack.deployed.tables["SettingsTable"])
    # Given two calls of one tenant that each need 600 tokens of a daily budget of 1000
    store.reserve("acme", "2026-03-03", "2026-03", 600, daily_budget=1000, monthly_budget=10_000)
    # When the second reserves before the first has settled (concurrent calls)
    with pytest.raises(BudgetRefused) as refused:
        store.reserve("acme", "2026-03-03", "2026-03", 600, daily_budget=1000, monthly_budget=10_000)
    # Then it is refused and nothing of it is counted, on the day or the month
    assert refused.value.details == {"budget": "daily"}
    assert store.get_usage("acme", "2026-03-03")["spent"] == 600  # type: ignore[index]
    assert store.get_month("acme", "2026-03")["spent"] == 600  # type: ignore[index]
    # And once the first settles at what it used, the second fits
    store.settle("acme", "2026-03-03", "2026-03", reserved=600, input_tokens=150, output_tokens=20)
    store.reserve("acme", "2026-03-03", "2026-03", 600, daily_budget=1000, monthly_budget=10_000)
    assert store.get_usage("acme", "2026-03-03")["spent"] == 770  # type: ignore[index]


def test_the_same_question_is_answered_from_the_cache(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock on and an unsure email categorized once
    switch_on(invoke_api)
    email_id = Seeder(stack).add(UNSURE)
    first = categorize(invoke_api, email_id)
    assert first["reasons"][0] == "bedrock:finance"
    # When the same email is categorized again
    again = categorize(invoke_api, email_id)
    # Then Bedrock is not asked again: the cached answer decides, no tokens are spent
    assert len(bedrock.requests) == 1
    assert again["category"] == first["category"]
    assert again["reasons"][0] == "bedrock:cached:finance"
    usage = status(invoke_api)["usage"]
    assert (usage["calls"], usage["cache_hits"]) == (1, 1)


# ---------------------------------------------------------------------------------- leads

SIGNED = rfc(
    msgid="lead-1@analytical-engines.example",
    sender="Ada Lovelace <ada@analytical-engines.example>",
    to="sam@shop.test",
    subject="Numbers",
    date="Tue, 03 Mar 2026 10:00:00 +0000",
    text=(
        "Hello Sam, we would like to talk.\r\n\r\nBest regards,\r\nAda Lovelace\r\n"
        "Title: Numerist\r\nTel: +44 20 7946 0000\r\n"
    ),
)
"""The rules find name, phone, company domain (and a company guessed from it), not the title."""


def test_lead_fields_the_rules_did_not_find_are_filled_by_bedrock(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given a signature whose title the rules cannot read
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(SIGNED)
    before = body(invoke_api(api("ai-extract-lead", body={"email_id": email_id})))
    assert before["lead"]["title"] is None
    assert before["lead"]["name"]["value"] == "Ada Lovelace"
    # When Bedrock is switched on and the lead is extracted again
    put_bedrock(invoke_api, enabled=True)
    after = body(invoke_api(api("ai-extract-lead", body={"email_id": email_id})))
    # Then the title comes from the model, and what the rules found is unchanged
    assert after["bedrock"] == "used"
    assert after["lead"]["title"] == {"value": "Numerist", "confidence": 0.5, "source": "model"}
    for name in ("name", "phone", "company_domain", "company"):
        assert after["lead"][name] == before["lead"][name], name
    assert len(bedrock.requests) == 1


def signed(n: int, address: str) -> bytes:
    return rfc(
        msgid=f"lead-{n}@analytical-engines.example",
        sender="Ada Lovelace <ada@analytical-engines.example>",
        to="sam@shop.test",
        subject="Numbers",
        date="Tue, 03 Mar 2026 10:00:00 +0000",
        text=f"Hello Sam.\r\n\r\nBest regards,\r\nAda Lovelace\r\nMail: {address}\r\n",
    )


def test_placeholders_in_the_answer_are_restored_per_call_also_from_the_cache(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given two signatures that differ only in their address (so one scrubbed prompt), and a model
    # answer naming the placeholder it was given
    switch_on(invoke_api)
    seed = Seeder(stack)
    first, second = seed.add(signed(2, "ada.home@one.example")), seed.add(signed(3, "ada.work@two.example"))
    bedrock.script({"title": "Numerist at [EMAIL_1]"})
    # When both leads are extracted
    leads = [body(invoke_api(api("ai-extract-lead", body={"email_id": i}))) for i in (first, second)]
    # Then one call was made, its prompt without the address, and each answer names its own address
    assert [lead["bedrock"] for lead in leads] == ["used", "cached"]
    assert len(bedrock.requests) == 1
    assert "ada.home@one.example" not in bedrock.requests[0].text
    assert "Mail: [EMAIL_1]" in bedrock.requests[0].text
    assert [lead["lead"]["title"]["value"] for lead in leads] == [
        "Numerist at ada.home@one.example",
        "Numerist at ada.work@two.example",
    ]


def test_lead_extraction_falls_back_to_the_rules_on_a_bedrock_error(
    stack: Stack, invoke_api: Invoke, bedrock: BedrockDouble
) -> None:
    # Given Bedrock switched on, denying access to the model
    switch_on(invoke_api)
    email_id = Seeder(stack).add(SIGNED)
    bedrock.deny("anthropic.claude-3-haiku-20240307-v1:0")
    # When the lead is extracted
    response = invoke_api(api("ai-extract-lead", body={"email_id": email_id}))
    # Then the rules' lead is answered with the reason, never an error
    assert response["statusCode"] == 200, response
    result = body(response)
    assert result["bedrock"] == "fallback:access_denied"
    assert result["lead"]["title"] is None
    assert result["lead"]["name"]["value"] == "Ada Lovelace"
