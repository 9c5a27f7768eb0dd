"""The issuer's signing keys for WebSocket $connect tokens (mailbridge.providers.oidc): read through
OIDC discovery on first use, read again for a `kid` not yet known (key rotation), at most once a
minute, and an unreachable issuer is a typed error."""

from __future__ import annotations

import json

import httpx
import pytest

from local.auth import Issuer
from mailbridge.errors import ProviderUnreachable
from mailbridge.providers.oidc import OidcKeys

BASE = "https://issuer.test"


class FakeIssuer:
    """Serves discovery and a JWK Set of the keys in `published`; counts the requests."""

    def __init__(self) -> None:
        self.published = [Issuer.create(BASE)]
        self.requests: list[str] = []
        self.down = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if self.down:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": BASE, "jwks_uri": f"{BASE}/jwks"})
        if request.url.path == "/jwks":
            return httpx.Response(200, content=json.dumps({"keys": [k.public_jwk() for k in self.published]}))
        return httpx.Response(404)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys_of(issuer: FakeIssuer, clock: Clock) -> OidcKeys:
    return OidcKeys(BASE, transport=httpx.MockTransport(issuer.handle), monotonic=clock)


def test_keys_are_read_once_and_a_new_kid_is_fetched_after_the_minute() -> None:
    # Given an issuer publishing one key
    issuer, clock = FakeIssuer(), Clock()
    keys = keys_of(issuer, clock)
    first = issuer.published[0]
    # When its kid is asked twice
    assert keys.key(first.kid) is not None
    assert keys.key(first.kid) is not None
    # Then discovery and the key set were read once
    assert issuer.requests == ["/.well-known/openid-configuration", "/jwks"]
    # Given the issuer rotates to a new key
    issuer.published.append(Issuer.create(BASE))
    rotated = issuer.published[1].kid
    # When a token names it within the minute, it is unknown and the issuer is not asked again
    assert keys.key(rotated) is None
    assert len(issuer.requests) == 2
    # When the minute has passed, the key set is read again and the new key is found
    clock.now += 60
    assert keys.key(rotated) is not None
    assert len(issuer.requests) == 4


def test_an_unreachable_issuer_is_a_provider_unreachable_error() -> None:
    # Given an issuer that answers 503
    issuer = FakeIssuer()
    issuer.down = True
    # When a key is asked for
    # Then the error is typed, with a machine-readable code
    with pytest.raises(ProviderUnreachable) as raised:
        keys_of(issuer, Clock()).key("any")
    assert raised.value.code == "issuer_unreachable"
