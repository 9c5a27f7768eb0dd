"""Every plain-httpx provider adapter turns a timeout into ProviderUnreachable `timeout` and any
other transport failure into ProviderUnreachable `unreachable`, naming the provider, never the
URL (providers/http.py `transport_errors`). No sockets: httpx.MockTransport raises."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from mailbridge.errors import ProviderUnreachable
from mailbridge.oauth.http import post_form
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.google_calendar.client import GoogleCalendarClient
from mailbridge.providers.graph.client import GraphClient

BASE = "https://provider.invalid/v1"


def _failing(error: type[httpx.RequestError]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return httpx.Client(transport=httpx.MockTransport(handler))


def _token(_force: bool) -> str:
    return "token"


CALLS: dict[str, tuple[str, Callable[[httpx.Client], object]]] = {
    "gmail": ("Gmail", lambda http: GmailClient(BASE, _token, http=http).get_profile()),
    "google-calendar": (
        "Google Calendar",
        lambda http: GoogleCalendarClient(BASE, _token, http=http).list_events(None),
    ),
    "graph": ("Graph", lambda http: GraphClient(_token, base_url=BASE, http=http).folder("inbox")),
    "oauth": (
        "the authorization server",
        lambda http: post_form(f"{BASE}/token", {"grant_type": "x"}, http=http),
    ),
}


@pytest.mark.parametrize("adapter", sorted(CALLS))
@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (httpx.ReadTimeout, "timeout", "did not answer in time"),
        (httpx.ConnectTimeout, "timeout", "did not answer in time"),
        (httpx.ConnectError, "unreachable", "is unreachable"),
        (httpx.RemoteProtocolError, "unreachable", "is unreachable"),
    ],
)
def test_transport_failures_are_provider_unreachable(
    adapter: str, error: type[httpx.RequestError], code: str, says: str
) -> None:
    # Given an adapter whose HTTP client fails below HTTP
    name, call = CALLS[adapter]
    # When it calls its provider
    with pytest.raises(ProviderUnreachable) as raised:
        call(_failing(error))
    # Then the error is typed, retryable, names the provider and not the URL
    assert raised.value.code == code
    assert raised.value.retryable
    assert raised.value.message == f"{name} {says}"
    assert "provider.invalid" not in raised.value.message
