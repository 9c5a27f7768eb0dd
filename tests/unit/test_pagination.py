"""Cursors without the API: every character is covered by the tag, and a cursor belongs to one
tenant, one listing and one signing key."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from mailbridge.errors import Invalid
from mailbridge.store import pagination
from mailbridge.store.pagination import decode_cursor, encode_cursor

KEY = b"k" * 64
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
BASE = {"pk": "TENANT#acme", "sk": "CONTACT#ct_0193a5b2c4d1e2f3a4b5c6d7e8"}
GSI = {
    "pk": "TENANT#acme",
    "sk": "EMAIL#em_0193a5b2c4d1e2f3a4b5c6d7e8",
    "gsi1pk": "TENANT#acme#ACC#acc_7f3e2d1c0b9a8f7e6d5c",
    "gsi1sk": "2026-01-01T09:00:00+00:00#em_0193a5b2c4d1e2f3a4b5c6d7e8",
}
NUMERIC = {"pk": "TENANT#acme", "n": Decimal("12345678901234567890.5"), "i": 7}


def decoded(cursor: str, tenant: str = "acme", listing: str = "contacts", key: bytes = KEY) -> Any:
    return decode_cursor(cursor, tenant, listing=listing, key=key)


def assert_invalid(cursor: str, **kwargs: Any) -> None:
    with pytest.raises(Invalid) as raised:
        decoded(cursor, **kwargs)
    # the one 400 answer for every refused cursor (which check failed is of no use to a client)
    assert (raised.value.code, raised.value.message) == (
        "invalid_cursor",
        "the cursor is not valid for this listing; start again without one",
    )


# Three lengths, so the last base64 character carries 0, 2 and 4 unused bits in one of them.
SHAPES = [BASE, GSI, NUMERIC, *({**BASE, "sk": BASE["sk"] + "x" * n} for n in (1, 2))]
SHAPE_IDS = ["base", "gsi", "numbers", "base+1", "base+2"]


@pytest.mark.parametrize("last_key", SHAPES, ids=SHAPE_IDS)
def test_a_cursor_round_trips_for_its_tenant_and_listing(last_key: dict[str, Any]) -> None:
    # (every length modulo 4: the padding base64 leaves out must be put back exactly)
    cursor = encode_cursor(last_key, "acme", listing="contacts", key=KEY)
    assert cursor is not None
    assert decoded(cursor) == last_key


def test_no_last_key_means_no_next_page_and_no_key_is_needed() -> None:
    # (no key passed: reading the secret would need the network, which unit tests do not have)
    assert encode_cursor(None, "acme") is None
    assert encode_cursor({}, "acme") is None
    assert decode_cursor(None, "acme") is None
    assert decode_cursor("", "acme") is None


@pytest.mark.parametrize("last_key", SHAPES, ids=SHAPE_IDS)
def test_every_changed_character_is_refused(last_key: dict[str, Any]) -> None:
    cursor = encode_cursor(last_key, "acme", listing="contacts", key=KEY)
    assert cursor is not None
    for i, char in enumerate(cursor):
        for replacement in set(ALPHABET) - {char}:
            assert_invalid(cursor[:i] + replacement + cursor[i + 1 :])


def test_a_cursor_is_bound_to_tenant_listing_and_key() -> None:
    cursor = encode_cursor(BASE, "acme", listing="contacts", key=KEY)
    assert cursor is not None
    assert_invalid(cursor, tenant="globex")
    assert_invalid(cursor, listing="companies")
    assert_invalid(cursor, key=b"rotated")


def test_a_forged_key_is_refused() -> None:
    cursor = encode_cursor(BASE, "acme", listing="contacts", key=KEY)
    assert cursor is not None
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    forged = raw.replace(b"CONTACT#ct_0", b"CONTACT#ct_1")
    assert forged != raw
    assert_invalid(base64.urlsafe_b64encode(forged).decode().rstrip("="))


@pytest.mark.parametrize("garbage", ["!!!", "e30", "bm90IGpzb24", "W10", "AQ", "A" * 60, "é", "a b", "a=="])
def test_malformed_cursors_are_invalid(garbage: str) -> None:
    assert_invalid(garbage)


# A cursor issued by the code as deployed today (key b"k" * 64, tenant acme, listing contacts).
ISSUED = (
    "AWYzVnIPfobYPLBwVeEukED39feCZcKPPtTO8PqVT-YQeyJuIjp7Ik4iOiI3In0sInBrIjp7IlMiOiJURU5BTlQjYWNt"
    "ZSJ9LCJzayI6eyJTIjoiQ09OVEFDVCNjdF8xIn19"
)


def test_a_cursor_issued_before_a_deploy_is_still_accepted_and_issued_alike() -> None:
    # Given a cursor a client got from the previous deployment (same signing key)
    last_key = {"pk": "TENANT#acme", "sk": "CONTACT#ct_1", "n": 7}
    # When it comes back, and when the same page end is encoded again
    # Then it resumes at the same key, and the same cursor is issued: the format did not change
    assert decoded(ISSUED) == last_key
    assert encode_cursor(last_key, "acme", listing="contacts", key=KEY) == ISSUED


def signed(payload: bytes) -> str:
    """A cursor made with the signing key around any payload: what only the server could make."""
    from mailbridge.store.pagination import _tag

    raw = b"\x01" + _tag(KEY, "acme", "contacts", payload) + payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"sk":"x"}',
        b'{"sk":["x"]}',
        b'{"sk":5}',
        b'{"sk":{"S":"a","N":"1"}}',
        b'{"sk":{"S":5}}',
        b'{"sk":{"N":"NaN"}}',
        b'{"sk":{"N":"one"}}',
        b"{}",
        b"[]",
        b"\xff",
    ],
)
def test_a_signed_key_that_is_not_a_typed_dynamodb_key_is_invalid_not_an_error(payload: bytes) -> None:
    # Given a correctly signed cursor whose key is not in DynamoDB's typed form
    # When it is decoded
    # Then the answer is invalid_cursor (400), never another exception (500)
    assert_invalid(signed(payload))


def test_a_cursor_made_without_a_listing_name_is_read_without_one() -> None:
    # Given a cursor encoded with the default (empty) listing
    cursor = encode_cursor(BASE, "acme", key=KEY)
    assert cursor is not None
    # When it is decoded with the default listing, Then it resumes; another listing refuses it
    assert decode_cursor(cursor, "acme", key=KEY) == BASE
    assert_invalid(cursor, listing="contacts")


@pytest.mark.parametrize(
    ("value", "name"), [(True, "bool"), (b"x", "bytes"), (1.5, "float"), (None, "NoneType")]
)
def test_a_key_attribute_that_is_neither_string_nor_number_makes_no_cursor(value: object, name: str) -> None:
    # Given a last key with an attribute DynamoDB keys never hold here (S and N only)
    # When a cursor is made of it, Then it is refused, naming the type
    with pytest.raises(TypeError) as raised:
        encode_cursor({"pk": "TENANT#acme", "sk": value}, "acme", key=KEY)
    assert str(raised.value) == f"unsupported key attribute type {name}"


def test_without_a_key_given_the_signing_key_from_settings_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the signing key the settings name (read from Secrets Manager in a deployment)
    monkeypatch.setattr(pagination, "signing_key", lambda: KEY)
    # When a cursor is made and read without a key, Then it is signed and checked with that key
    cursor = encode_cursor(BASE, "acme", listing="contacts")
    assert cursor == encode_cursor(BASE, "acme", listing="contacts", key=KEY)
    assert cursor is not None
    assert decode_cursor(cursor, "acme", listing="contacts") == BASE
    # And a cursor signed with another key is refused
    other = encode_cursor(BASE, "acme", listing="contacts", key=b"rotated")
    assert other is not None
    with pytest.raises(Invalid):
        decode_cursor(other, "acme", listing="contacts")
