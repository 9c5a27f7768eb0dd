"""Deterministic identifiers shaped like Salesforce's (one seeded generator per double).

* Record ids: a 3-character key prefix naming the object (Contact `003`, Lead `00Q`, Campaign `701`,
  CampaignMember `00v`, Task `00T`, EmailMessage `02s`, User `005`, Organization `00D`, Bulk job
  `750`, query locator `01g`, outbound notification `04l`, outbound message action `04k`) [R], then
  12 base-62 characters, then the 3-character case-safe suffix computed as Salesforce documents it
  for 18-character ids: each 5-character chunk gives a 5-bit mask of its upper-case letters, read
  in "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" [D, "What are Salesforce IDs composed of?"]. The API takes
  15- or 18-character ids and always answers with 18.
* OAuth artefacts: access tokens `<15-char org id>!<opaque>` as Salesforce's session ids are [R];
  refresh tokens `5Aep861...` [R]; authorization codes `aPrx...` [R]; device flow user codes of 8
  upper-case letters and digits [R].
"""

from __future__ import annotations

import random
import re
import string
import threading

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
SUFFIX = string.ascii_uppercase + "012345"
ID_15 = re.compile(r"[a-zA-Z0-9]{15}")
ID_18 = re.compile(r"[a-zA-Z0-9]{18}")


def suffix(id15: str) -> str:
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        out += SUFFIX[bits]
    return out


def to18(value: str) -> str | None:
    """A 15- or 18-character id as its 18-character form; None if it is not an id at all."""
    if ID_15.fullmatch(value):
        return value + suffix(value)
    if ID_18.fullmatch(value) and suffix(value[:15]) == value[15:].upper():
        return value[:15] + suffix(value[:15])
    return None


class Ids:
    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._lock = threading.Lock()
        self._sequence = self._random.randint(10_000, 99_999)
        self.pod = "".join(self._random.choice(BASE62[:36]) for _ in range(2))

    def _text(self, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self._random.choice(alphabet) for _ in range(length))

    def record(self, prefix: str) -> str:
        """An 18-character id; ids handed out later sort after earlier ones, as Salesforce's do."""
        with self._lock:
            self._sequence += 1
            number, digits = self._sequence, ""
            while number:
                number, rest = divmod(number, 62)
                digits = BASE62[rest] + digits
            id15 = prefix + self.pod + "0" + digits.rjust(9, "0")
        return id15 + suffix(id15)

    def access_token(self, org_id: str) -> str:
        with self._lock:
            return f"{org_id[:15]}!AR" + self._text(94, string.ascii_letters + string.digits + "._")

    def refresh_token(self) -> str:
        with self._lock:
            return "5Aep861" + self._text(80, string.ascii_letters + string.digits + "._")

    def code(self) -> str:
        with self._lock:
            return "aPrx" + self._text(80, string.ascii_letters + string.digits + "._=")

    def device_code(self) -> str:
        with self._lock:
            return self._text(48)

    def user_code(self) -> str:
        with self._lock:
            return self._text(8, string.ascii_uppercase + string.digits)

    def token(self, length: int = 32) -> str:
        with self._lock:
            return self._text(length)
