"""Deterministic identifiers that look like Google's (one seeded generator per double)."""

from __future__ import annotations

import random
import string
import threading
from datetime import datetime

_URLSAFE = string.ascii_letters + string.digits + "-_"


class Ids:
    """Every id the double hands out, reproducible from `seed`.

    * Gmail message ids: 16 hex digits, the epoch milliseconds of the message shifted left by 20
      bits plus a sequence, so ids sort by time as Gmail's do (e.g. ``18c9f0a1b2c3d4e5``) [R].
    * historyIds: decimal strings that only grow, with random gaps ("IDs increase but are not
      contiguous", users.history.list [D]).
    * OAuth artefacts with Google's prefixes: codes ``4/0...``, access tokens ``ya29.``, refresh
      tokens ``1//0...`` [R]; Pub/Sub message ids are 16-17 decimal digits [R].
    """

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._lock = threading.Lock()
        self._sequence = 0
        self._last_message_id = 0

    def _text(self, length: int, alphabet: str = _URLSAFE) -> str:
        return "".join(self._random.choice(alphabet) for _ in range(length))

    def message_id(self, at: datetime) -> str:
        with self._lock:
            self._sequence = (self._sequence + 1) & 0xFFFFF
            value = (int(at.timestamp() * 1000) << 20) | self._sequence
            value = max(value, self._last_message_id + 1)
            self._last_message_id = value
            return f"{value:016x}"

    def history_start(self) -> int:
        with self._lock:
            return self._random.randint(100_000, 999_999)

    def history_gap(self) -> int:
        with self._lock:
            return self._random.randint(1, 9)

    def code(self) -> str:
        with self._lock:
            return "4/0" + self._text(70)

    def access_token(self) -> str:
        with self._lock:
            return "ya29.a0" + self._text(160)

    def refresh_token(self) -> str:
        with self._lock:
            return "1//0" + self._text(99)

    def token(self, length: int = 24) -> str:
        with self._lock:
            return self._text(length)

    def digits(self, length: int) -> str:
        with self._lock:
            return str(self._random.randint(1, 9)) + self._text(length - 1, string.digits)

    def hex(self, length: int) -> str:
        with self._lock:
            return self._text(length, "0123456789abcdef")
