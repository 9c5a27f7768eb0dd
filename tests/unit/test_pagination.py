from __future__ import annotations

from decimal import Decimal

import pytest

from mailbridge.errors import Invalid
from mailbridge.store.pagination import decode_cursor, encode_cursor


def test_cursor_round_trips_for_its_tenant() -> None:
    key = {"pk": "TENANT#acme", "sk": "EMAIL#42", "n": Decimal(7)}
    cursor = encode_cursor(key, "acme")
    assert cursor is not None
    assert "TENANT" not in cursor  # opaque, not readable at a glance
    assert decode_cursor(cursor, "acme") == {"pk": "TENANT#acme", "sk": "EMAIL#42", "n": 7}


def test_no_last_key_means_no_next_page() -> None:
    assert encode_cursor(None, "acme") is None
    assert encode_cursor({}, "acme") is None
    assert decode_cursor(None, "acme") is None


def test_another_tenants_cursor_is_rejected() -> None:
    cursor = encode_cursor({"pk": "TENANT#acme", "sk": "x"}, "acme")
    with pytest.raises(Invalid) as raised:
        decode_cursor(cursor, "globex")
    assert raised.value.code == "invalid_cursor"


@pytest.mark.parametrize("garbage", ["!!!", "e30", "bm90IGpzb24", "W10"])
def test_malformed_cursors_are_invalid(garbage: str) -> None:
    with pytest.raises(Invalid):
        decode_cursor(garbage, "acme")
