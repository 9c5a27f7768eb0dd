"""Features of a message or a sentence, named and then hashed, in plain Python.

The same functions feed the training script (scripts/train_categorizer.py) and the scorer
(`mailbridge.ai.model`), so what was learnt is exactly what is scored. A feature is a name
(`w:invoice`, `s:offer`, `b:click_here`, `x:links:10+`) with a value; names are hashed with
CRC-32 (zlib, stable across processes and platforms, unlike `hash()`) into `2**HASH_BITS`
buckets (the "hashing trick", Weinberger et al. 2009) and the vector is L2-normalized.

What is deliberately NOT a feature, because it tells where a corpus file came from rather than
what the mail is: addresses and domains (replaced by `_email_` / `_url_` placeholders), dates,
Received/Message-ID and every other transport header, the corpora's own bookkeeping headers
(Enron's X-Folder/X-From/X-To/X-FileName/X-Origin, SpamAssassin's X-Spam-*), and whether the
body is HTML (the Enron export is plain text only, so "has HTML" would learn the corpus, not
the mail). Only the subject, the body text and a few counts (links, images, recipients,
attachments) are used.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbridge.models.email import ParsedMessage

HASH_BITS = 20
HASH_MASK = (1 << HASH_BITS) - 1
# Characters of body text looked at: enough for any human-written message and the head of a
# newsletter; a multi-megabyte body costs no more than this.
MAX_BODY_CHARS = 12_000
MAX_SENTENCE_CHARS = 1_000

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MONEY = re.compile(r"[$\u20ac\u00a3]\s?\d[\d,.]*|\d[\d,.]*\s?(?:usd|eur|gbp|dollars)\b", re.IGNORECASE)
_PERCENT = re.compile(r"\d+(?:\.\d+)?\s?%")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?|_(?:url|email|money|pct|num)_")
# Scripts written without spaces (CJK, kana, Thai): a run of them is cut into character bigrams.
_UNSPACED = re.compile(
    r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]{2,}"
)
_TAG = re.compile(r"<(font|table|center|img|a|b|strong|big|h[1-6]|style|td|span|div|p|br)\b", re.IGNORECASE)
_MIXED_TOKEN = re.compile(r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{6,}\b", re.IGNORECASE)
_HREF = re.compile(r"<a\s[^>]*href", re.IGNORECASE)
_IMG = re.compile(r"<img\s", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw)\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|wg|tr)\s*:", re.IGNORECASE)
_QUOTED_LINE = re.compile(r"(?m)^[ \t]*>.*$")
# Cut at the first quoted-history marker: Outlook's separator, Notes' "Forwarded by", Gmail's
# "On ... wrote:" (English only; the model scores what the sender wrote, not what they quoted).
_HISTORY_MARKER = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*Original Message[ \t]*-{2,}|-{5,}[ \t]*Forwarded by|On .{0,200}wrote:[ \t]*$"
    r"|From:[ \t].{0,200}\n[ \t]*(?:Sent|Date):)",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=[-*\u2022]\s)")


def normalize_text(text: str) -> str:
    """Lower-cased text with URLs, addresses, amounts, percentages and numbers as placeholders."""
    text = _URL.sub(" _url_ ", text)
    text = _EMAIL.sub(" _email_ ", text)
    text = _MONEY.sub(" _money_ ", text)
    text = _PERCENT.sub(" _pct_ ", text)
    text = _NUMBER.sub(" _num_ ", text)
    return text.lower()


def tokens(text: str) -> list[str]:
    """Words of `text` after `normalize_text` (letters only, apostrophes kept inside a word;
    runs of CJK, kana, hangul or Thai as overlapping character bigrams)."""
    found: list[str] = []
    for word in _WORD.findall(normalize_text(text)):
        if _UNSPACED.fullmatch(word):
            found.extend(word[i : i + 2] for i in range(len(word) - 1))
        else:
            found.append(word)
    return found


def new_text(body: str) -> str:
    """The part of a plain-text body its sender wrote: quoted lines and history dropped."""
    marker = _HISTORY_MARKER.search(body)
    if marker is not None:
        body = body[: marker.start()]
    return _QUOTED_LINE.sub("", body)


def sentences(text: str, limit: int = 40) -> list[str]:
    """Up to `limit` sentences or lines of `text`, each stripped and non-empty."""
    found: list[str] = []
    for chunk in _SENTENCE_END.split(text):
        cleaned = " ".join(chunk.split())
        if len(cleaned) >= 3:
            found.append(cleaned[:MAX_SENTENCE_CHARS])
            if len(found) >= limit:
                break
    return found


def _bucket(count: int, edges: tuple[int, ...]) -> str:
    for edge in edges:
        if count < edge:
            return f"<{edge}"
    return f"{edges[-1]}+"


def _words(prefix: str, words: list[str], into: Counter[str]) -> None:
    for word in words:
        into[prefix + word] += 1


def _bigrams(words: list[str], into: Counter[str]) -> None:
    for first, second in pairwise(words):
        into[f"b:{first}_{second}"] += 1


def message_features(message: ParsedMessage, *, form: bool = False) -> dict[str, float]:
    """Named features of a normalized message: subject and body words and bigrams, counts.

    `form`: also how the message is built (HTML and its tags, the mailer, priority headers,
    parser defects, odd tokens in the subject). Right for spam, where both classes come from one
    collection; wrong for bulk-vs-person, where the person mail (Enron) is a plain-text export.
    Values are log(1 + count) for words and indicator 1.0 for the counts' buckets; unscaled
    (`hashed` normalizes).
    """
    counts: Counter[str] = Counter()
    subject = message.subject or ""
    body = (message.text_body or "")[:MAX_BODY_CHARS]
    subject_words = tokens(subject)
    body_words = tokens(body)
    _words("s:", subject_words, counts)
    _words("w:", subject_words, counts)
    _words("w:", body_words, counts)
    _bigrams(body_words, counts)
    features = {name: math.log1p(value) for name, value in counts.items()}

    html = (message.html_body or "")[: MAX_BODY_CHARS * 4]
    links = len(_HREF.findall(html)) + len(_URL.findall(body))
    recipients = len(message.to) + len(message.cc)
    flags = {
        f"x:links:{_bucket(links, (1, 3, 10, 25))}",
        f"x:images:{_bucket(len(_IMG.findall(html)), (1, 3, 10))}",
        f"x:recipients:{_bucket(recipients, (1, 2, 6, 20))}",
        f"x:attachments:{_bucket(len(message.attachments), (1, 2, 5))}",
        f"x:words:{_bucket(len(body_words), (5, 30, 150, 600))}",
    }
    if _REPLY_PREFIX.match(subject):
        flags.add("x:subject:reply")
    if _FORWARD_PREFIX.match(subject):
        flags.add("x:subject:forward")
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        flags.add("x:subject:shouting")
    if "!" in subject:
        flags.add("x:subject:exclamation")
    if message.reply_to and message.from_ and message.reply_to[0].address != message.from_[0].address:
        flags.add("x:reply-to-differs")
    if form:
        flags |= _form_flags(message, subject, html)
    for flag in flags:
        features[flag] = 1.0
    return features


def _form_flags(message: ParsedMessage, subject: str, html: str) -> set[str]:
    flags = {f"f:tag:{tag.lower()}" for tag in _TAG.findall(html)}
    if html:
        flags.add("f:html")
        if not message.text_body or len(html) > 4 * len(message.text_body):
            flags.add("f:html-heavy")
    flags |= _header_flags(message, subject)
    flags |= _address_flags(message)
    body = (message.text_body or "")[:MAX_BODY_CHARS]
    words = body.split()
    if words:
        shouted = sum(1 for w in words if len(w) > 2 and w.isupper())
        flags.add(f"f:body-caps:{_bucket(100 * shouted // len(words), (2, 5, 10, 20))}")
        flags.add(f"f:body-exclamations:{_bucket(body.count('!'), (1, 3, 10))}")
    return flags


def _header_flags(message: ParsedMessage, subject: str) -> set[str]:
    flags: set[str] = set()
    headers = message.headers_of_interest
    for name in ("x-mailer", "user-agent"):
        for word in tokens(headers.get(name, ""))[:4]:
            flags.add(f"f:mailer:{word}")
    for name in ("x-priority", "importance", "priority"):
        if name in headers:
            flags.add(f"f:{name}:{headers[name][:1].lower()}")
    flags.update(f"f:defect:{name}" for name in message.defects[:10])
    if message.list_ is not None:
        flags.add("f:list")
    if not message.to:
        flags.add("f:no-to")
    if message.date_source != "header":
        flags.add("f:no-date")
    if _MIXED_TOKEN.search(subject):
        flags.add("f:subject:mixed-token")
    if any(ord(c) > 127 for c in subject):
        flags.add("f:subject:non-ascii")
    return flags


def _domain(address: str | None) -> str:
    return (address or "").rpartition("@")[2].lower()


def _address_flags(message: ParsedMessage) -> set[str]:
    """How the message names itself and its parties (shapes only, never the values)."""
    flags: set[str] = set()
    sender = message.from_[0] if message.from_ else None
    from_domain = _domain(sender.address) if sender else ""
    if sender is None:
        flags.add("f:no-from")
    else:
        local = sender.address.rpartition("@")[0]
        if any(c.isdigit() for c in local):
            flags.add("f:from-local-digits")
        if not sender.name:
            flags.add("f:from-no-name")
        elif "@" in sender.name:
            flags.add("f:from-name-address")
        flags.add(f"f:from-tld:{from_domain.rpartition('.')[2][:6]}")
        for word in tokens(sender.name or "")[:4]:
            flags.add(f"f:from-name:{word}")
    flags |= _identity_flags(message, from_domain)
    if sender and any(a.address.lower() == sender.address.lower() for a in message.to):
        flags.add("f:to-self")
    return flags


def _identity_flags(message: ParsedMessage, from_domain: str) -> set[str]:
    flags: set[str] = set()
    if message.in_reply_to:
        flags.add("f:in-reply-to")
    if message.references:
        flags.add("f:references")
    if not message.message_id:
        flags.add("f:no-message-id")
    else:
        id_local, _, id_domain = message.message_id.rpartition("@")
        if from_domain and id_domain.lower().endswith(from_domain):
            flags.add("f:message-id-from-domain")
        if id_local.isdigit():
            flags.add("f:message-id-digits")
        if "$" in id_local:
            flags.add("f:message-id-dollar")
        flags.add(f"f:message-id-length:{_bucket(len(id_local), (10, 20, 30, 45))}")
    if message.return_path and from_domain and _domain(message.return_path) != from_domain:
        flags.add("f:return-path-differs")
    if message.sender is not None:
        flags.add("f:sender")
    return flags


def sentence_features(text: str) -> dict[str, float]:
    """Named features of one sentence: words, bigrams, the opening words, the question mark."""
    text = text[:MAX_SENTENCE_CHARS]
    words = tokens(text)
    counts: Counter[str] = Counter()
    _words("w:", words, counts)
    _bigrams(words, counts)
    features = {name: math.log1p(value) for name, value in counts.items()}
    if words:
        features[f"first:{words[0]}"] = 1.0
    if len(words) > 1:
        features[f"first2:{words[0]}_{words[1]}"] = 1.0
    stripped = text.rstrip()
    if stripped.endswith("?"):
        features["x:question"] = 1.0
    if stripped.endswith("!"):
        features["x:exclamation"] = 1.0
    features[f"x:length:{_bucket(len(words), (4, 8, 16, 32))}"] = 1.0
    return features


def hash_name(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) & HASH_MASK


def hashed(features: dict[str, float]) -> dict[int, float]:
    """Bucket -> value. The text features (words, bigrams) and the flags (`x:`, `f:`) are each
    L2-normalized on their own, so a handful of flags is not drowned by hundreds of words."""
    vector: dict[int, float] = {}
    for group in (_text_group(features), _flag_group(features)):
        norm = math.sqrt(sum(v * v for v in group.values()))
        if norm == 0:
            continue
        for name, value in group.items():
            index = hash_name(name)
            vector[index] = vector.get(index, 0.0) + value / norm
    return vector


def _text_group(features: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in features.items() if name[:2] not in _FLAG_PREFIXES}


def _flag_group(features: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in features.items() if name[:2] in _FLAG_PREFIXES}


_FLAG_PREFIXES = frozenset({"x:", "f:"})
