"""The OAuth client secret (read on first use, cached, rotated after its TTL; the forms an
operator may paste) and the callback's answer (a redirect carrying the outcome, or JSON)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mailbridge import aws
from mailbridge.errors import ProviderAuthError
from mailbridge.oauth.providers import ClientSecret
from mailbridge.oauth.routes import outcome_response
from mailbridge.oauth.service import CallbackOutcome


class Secrets:
    def __init__(self, value: str) -> None:
        self.value = value
        self.reads = 0

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.reads += 1
        return {"SecretString": self.value}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Secrets:
    fake = Secrets("GOCSPX-first")
    monkeypatch.setattr(aws, "secretsmanager", lambda: fake)
    return fake


def test_the_secret_is_read_once_then_again_after_its_ttl(secrets: Secrets) -> None:
    now = [0.0]
    secret = ClientSecret("arn:secret", ttl_seconds=3600, clock=lambda: now[0])
    assert secrets.reads == 0  # nothing is read before it is needed
    assert (secret(), secret()) == ("GOCSPX-first", "GOCSPX-first")
    assert secrets.reads == 1
    secrets.value = "GOCSPX-rotated"
    now[0] = 3601
    assert secret() == "GOCSPX-rotated"
    assert secrets.reads == 2


@pytest.mark.parametrize(
    "stored",
    [
        "GOCSPX-abc\n",
        json.dumps({"client_secret": "GOCSPX-abc"}),
        json.dumps({"web": {"client_id": "x.apps.googleusercontent.com", "client_secret": "GOCSPX-abc"}}),
    ],
)
def test_the_bare_secret_or_googles_client_json_are_read(secrets: Secrets, stored: str) -> None:
    secrets.value = stored
    assert ClientSecret("arn:secret")() == "GOCSPX-abc"


def test_no_secret_configured_is_client_misconfigured(secrets: Secrets) -> None:
    with pytest.raises(ProviderAuthError) as raised:
        ClientSecret("")()
    assert raised.value.code == "client_misconfigured"
    assert secrets.reads == 0


def test_the_outcome_is_appended_to_the_front_end_url() -> None:
    response = outcome_response(
        CallbackOutcome(outcome="error", code="account_exists", account_id="acc_1"),
        "https://app.example/settings?tab=mail",
    )
    location = str(response.headers["Location"])
    assert response.status_code == 302
    assert location.startswith("https://app.example/settings?tab=mail&")
    assert parse_qs(urlsplit(location).query) == {
        "tab": ["mail"],
        "outcome": ["error"],
        "code": ["account_exists"],
        "account_id": ["acc_1"],
    }
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_without_a_front_end_url_the_outcome_is_json() -> None:
    response = outcome_response(CallbackOutcome(outcome="connected", account_id="acc_1"), "")
    assert response.status_code == 200
    assert json.loads(str(response.body)) == {
        "outcome": "connected",
        "code": None,
        "account_id": "acc_1",
        "integration_id": None,
    }
