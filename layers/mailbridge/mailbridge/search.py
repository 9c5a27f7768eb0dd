"""What `q` searches: one bounded, normalized word list per email, stored in its `search` attribute.

Normalization (the same for stored text and for the query): Unicode NFKC, then case folding
(Unicode Standard section 5.18, so "STRASSE" finds "straße"), then words = runs of letters, digits
and underscores (`\\w`); an address `alice@example.com` is the words `alice example com`.

The stored list holds each word once, in first-seen order: the subject, the senders' names and
addresses, the snippet, then the body text, until `MAX_SEARCH_CHARS`. A word list rather than a
prefix of the body because quoted replies and signatures repeat the same words: the distinct words
of a typical business mail fit in a few thousand characters, so a word deep in a long message is
still found, while the item (and every index that projects `search`) stays far below DynamoDB's
400 KB item limit. Bodies kept in S3 are indexed the same way: the words are taken at ingest.

The list is stored with a space before every word, so a query word matches the stored words it
begins (`contains(search, " kick")` finds "kickoff", and "d" does not find every word with a d
in it). A query matches when every one of its words does; phrases are not kept: "project
kickoff" finds mail with both words anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

MAX_SEARCH_CHARS = 8_000
# Longer runs are encoded data (base64, hashes, URLs' tokens), not words anyone types.
MAX_WORD_CHARS = 64
MAX_QUERY_WORDS = 10
# Text past this is not looked at (a bound on the work per message; the list is full long before).
MAX_SCAN_CHARS = 1_000_000

_WORD = re.compile(r"\w+")


def iter_words(text: str) -> Iterator[str]:
    """The normalized words of `text`, in order (repeats kept), found as they are asked for."""
    folded = unicodedata.normalize("NFKC", text[:MAX_SCAN_CHARS]).casefold()
    return (m.group() for m in _WORD.finditer(folded) if len(m.group()) <= MAX_WORD_CHARS)


def words(text: str) -> list[str]:
    return list(iter_words(text))


def search_text(parts: Iterable[str | None], limit: int = MAX_SEARCH_CHARS) -> str:
    """Distinct words of `parts` in first-seen order, each after a space, at most `limit` characters."""
    seen: dict[str, None] = {}
    used = 0
    for part in parts:
        for word in iter_words(part or ""):
            if word in seen:
                continue
            if used + len(word) + 1 > limit:
                return "".join(f" {w}" for w in seen)
            used += len(word) + 1
            seen[word] = None
    return "".join(f" {w}" for w in seen)


def query_terms(q: str | None) -> list[str]:
    """What the stored list must contain for each word of a query: the word after a space (the
    start of a stored word). At most `MAX_QUERY_WORDS`; empty when the query has no word."""
    return [f" {w}" for w in dict.fromkeys(words(q or ""))][:MAX_QUERY_WORDS]
