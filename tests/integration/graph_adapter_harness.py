"""The Graph adapter against the Microsoft double: a token source over the double's token
endpoint (as `oauth.tokens.access_token` will be for real accounts) and a client factory."""

from __future__ import annotations

import ssl

import httpx

from local.microsoft import MicrosoftDouble
from local.microsoft.identity import App
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.providers.graph.client import GraphClient
from tests.integration.local_microsoft.conftest import REDIRECT, USER, connect, refresh


class Tokens:
    """A TokenSource over the double's token endpoint that records forced refreshes (the
    refresh token rotates: the newest one is kept)."""

    def __init__(self, ms: MicrosoftDouble, app: App | None = None) -> None:
        self.ms = ms
        self.app = app or ms.register_app([REDIRECT])
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=ms.ca_file), timeout=15)
        body = connect(self.http, ms, self.app)
        self.access, self.refresh = str(body["access_token"]), str(body["refresh_token"])
        self.forced = 0

    def __call__(self, force_refresh: bool) -> str:
        if force_refresh:
            self.forced += 1
            answer = refresh(self.http, self.ms, self.app, self.refresh)
            if answer.status_code == 200:
                self.access = answer.json()["access_token"]
                self.refresh = answer.json().get("refresh_token", self.refresh)
        return self.access


def graph_client(
    ms: MicrosoftDouble, tokens: Tokens, *, budget: RequestBudget | None = None, page_size: int = 100
) -> GraphClient:
    return GraphClient(tokens, base_url=ms.graph_url, ca_file=ms.ca_file, budget=budget, page_size=page_size)


def mailbox_user(ms: MicrosoftDouble) -> str:
    ms.add_user(USER, "Ada Lovelace")
    return USER
