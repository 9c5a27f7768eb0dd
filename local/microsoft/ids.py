"""Deterministic identifiers shaped like Microsoft's (one seeded generator per double).

Shapes, all [R] (read off real responses and Microsoft's doc samples, never documented as formats):

* object ids, tenant ids, subscription ids, request ids: GUIDs;
* Exchange REST ids of messages ("AAMkAD..." base64, ~150 characters, URL-safe alphabet with
  padding) and immutable ids ("AAkALg..."), folder ids ("AQMkAD..."), change keys ("CQAAABYAAA...");
* OAuth artefacts: authorization codes "1.A..." (work or school) / "M.C5..." (personal), refresh
  tokens "1.A..." / "M.C5...", personal access tokens "EwB..." (opaque), client secrets with the
  "~" Entra puts at position four ("Xy78Q~...").
"""

from __future__ import annotations

import base64
import random
import string
import threading
import uuid
from typing import Any

_URLSAFE = string.ascii_letters + string.digits + "-_"
_SECRET = string.ascii_letters + string.digits + "-_.~"


class Ids:
    """Every id the double hands out, reproducible from `seed`."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._lock = threading.Lock()

    def _bytes(self, length: int) -> bytes:
        return bytes(self._random.getrandbits(8) for _ in range(length))

    def _text(self, length: int, alphabet: str = _URLSAFE) -> str:
        return "".join(self._random.choice(alphabet) for _ in range(length))

    def guid(self) -> str:
        with self._lock:
            return str(uuid.UUID(bytes=self._bytes(16), version=4))

    def exchange_id(self, prefix: bytes, length: int = 100) -> str:
        """An Exchange-style entry id: `prefix` + random bytes, URL-safe base64 with padding."""
        with self._lock:
            raw = prefix + self._bytes(length)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def rest_id(self) -> str:
        return self.exchange_id(b"\x00\x03$\x00", 108)  # encodes to "AAMkA..."

    def immutable_id(self) -> str:
        return self.exchange_id(b"\x00\t\x00.\x00", 66)  # encodes to "AAkALg..."

    def folder_id(self) -> str:
        return self.exchange_id(b"\x01\x03$\x00", 42)  # encodes to "AQMkA..."

    def contact_id(self) -> str:
        return self.exchange_id(b"\x00\x03$\x00", 108)

    def change_key(self) -> str:
        with self._lock:
            raw = b"\t\x00\x00\x00\x16\x00\x00\x00" + self._bytes(22)
        return base64.b64encode(raw).decode("ascii")

    def token(self, length: int = 40) -> str:
        with self._lock:
            return self._text(length)

    def code(self, personal: bool) -> str:
        with self._lock:
            return ("M.C5" + self._text(6) + "_BAY." if personal else "1.A") + self._text(220)

    def refresh_token(self, personal: bool) -> str:
        with self._lock:
            return ("M.C5" + self._text(6) + "_BL2." if personal else "1.A") + self._text(400)

    def opaque_access_token(self) -> str:
        with self._lock:
            return "EwB" + self._text(1200)

    def client_secret(self) -> str:
        with self._lock:
            return self._text(3, string.ascii_letters + string.digits) + "8Q~" + self._text(34, _SECRET)

    def digits(self, length: int) -> str:
        with self._lock:
            return "".join(self._random.choice(string.digits) for _ in range(length))

    def choice_index(self, count: int) -> int:
        with self._lock:
            return self._random.randrange(count)

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._random.shuffle(items)

    def seconds_between(self, low: int, high: int) -> int:
        with self._lock:
            return self._random.randint(low, high)
