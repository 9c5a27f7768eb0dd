"""The MIME normalizer over the shared corpus of 521 real messages from 13 parsers' test suites.

Every message's outcome is compared with a committed snapshot of our own results
(tests/integration/snapshots/mime_corpus.json, see tests/integration/mime_snapshot.py): subject,
addresses, date, attachment names and sizes, body hashes, or the quarantine reason. A change to
the snapshot is reviewed in its commit like code: regenerate it only for a deliberate change to the
normalizer, and read the diff. Where stalwart-mail-parser's expected JSON says what a header or
attachment name is, we must also agree with it. The structure parser must split every message into
the parts, headers, bodies and defects the stdlib feed parser (compat32) finds, except where a
Content-Type is folded (read unfolded here).

What we compare from the stalwart JSON, and what we deliberately do not:
- subject: compared after collapsing whitespace (we fold header lines to one line; stalwart keeps
  the folding whitespace as-is).
- from/to/cc: every entry that has an address is compared (address case-insensitively, since we
  lower-case the domain; name when stalwart gives one). Entries without an address ("Moderator-
  Address", "moderator") are skipped: we drop mailboxes without a domain on purpose,
  a CRM contact cannot be built from them.
- attachment names: every name stalwart finds on a top-level attachment must be one of ours
  (path components removed, whitespace collapsed, as we store them). We do not compare the set
  of attachments itself: stalwart counts message/rfc822 bodies, text parts and the TNEF container
  as attachments, while we append inline text to the body and unpack TNEF.
- bodies, offsets, header order and nested message parts are not compared: they describe
  stalwart's part tree, not the normalized fields we produce.

TNEF: the raw winmail.dat files of mimekit/tnef-raw are unpacked; every name in the matching
.list must be among ours, except `body.rtf`/`body.html` (the `tnef` tool writes the message body
as files of those names; we keep bodies as bodies). The listing tool also replaces spaces with
underscores in some files, so names are compared with `_` and ` ` treated alike, and as sets: for
embedded Outlook items (christmas.tnef) the tool writes more "Untitled Attachment" files than there
are attachments, while tnefparse gives each embedded item once plus the files inside it.
"""

from __future__ import annotations

import json
import re
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from mailbridge.mime import MimeError, normalize
from mailbridge.mime.errors import EMPTY, NOT_RFC822, TOO_COMPLEX, TOO_LARGE, UNPARSEABLE
from mailbridge.mime.structure import Part, TooComplex, parse_structure
from mailbridge.mime.tnef import unpack_tnef
from tests.integration import mime_snapshot

pytestmark = pytest.mark.corpus

CORPUS = mime_snapshot.corpus_root()
MIME = CORPUS / "mime" if CORPUS else None
EML_FILES = mime_snapshot.corpus_messages(MIME) if MIME else []
TNEF_FILES = sorted((MIME / "mimekit" / "tnef-raw").glob("*.tnef")) if MIME else []
STALWART = (
    sorted(p for p in (MIME / "stalwart-mail-parser").glob("*.json") if p.with_suffix(".eml").exists())
    if MIME
    else []
)
NO_CORPUS = "corpus not found: set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data"
REGENERATE = "if the change is deliberate: python -m tests.integration.mime_snapshot, and review the diff"
SNAPSHOT = mime_snapshot.load()


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(MIME)) for p in paths] if MIME else []


def _params(paths: list[Path]) -> list[Any]:
    return paths or [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPUS))]


def _ws(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


@pytest.mark.skipif(MIME is None, reason=NO_CORPUS)
def test_the_snapshot_has_one_entry_per_corpus_message() -> None:
    assert MIME is not None
    assert sorted(SNAPSHOT) == [mime_snapshot.key(MIME, p) for p in EML_FILES], REGENERATE


@pytest.mark.parametrize("path", _params(EML_FILES), ids=_ids(EML_FILES) or None)
def test_every_message_normalizes_as_the_snapshot_says(path: Path) -> None:
    assert MIME is not None
    # Given a corpus message and what we made of it when the snapshot was reviewed
    raw = path.read_bytes()
    expected = SNAPSHOT.get(mime_snapshot.key(MIME, path))
    # When it is normalized now
    summary = mime_snapshot.summarize(raw)
    # Then the outcome is the same: same fields, or quarantined for the same reason
    assert summary == expected, REGENERATE
    if "quarantined" in summary:
        assert summary["quarantined"] in {EMPTY, NOT_RFC822, TOO_LARGE, TOO_COMPLEX, UNPARSEABLE}
        return
    # And the record serializes, with attachment bytes that match their metadata
    result = normalize(raw)
    result.message.model_dump_json(by_alias=True)
    assert [meta for meta, _ in result.attachments] == result.message.attachments
    assert all(meta.size == len(data) for meta, data in result.attachments)


def _stdlib_parts(raw: bytes) -> list[Any] | None:
    """The stdlib feed parser's part tree, or None when a Content-Type is folded (our parser
    reads those unfolded, as policy.default did, so a folded boundary is still found)."""
    parts = []
    for part in BytesParser(policy=compat32).parsebytes(raw).walk():
        if any("\n" in str(v) or "\r" in str(v) for v in part.get_all("Content-Type") or []):
            return None
        payload = None if part.is_multipart() else vars(part)["_payload"]
        body = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else payload
        defects = [type(d).__name__ for d in part.defects]
        parts.append((part.items(), part.get_content_type(), defects, body, part.get_default_type()))
    return parts


@pytest.mark.parametrize("path", _params(EML_FILES), ids=_ids(EML_FILES) or None)
def test_the_structure_parser_splits_like_the_stdlib_feed_parser(path: Path) -> None:
    raw = path.read_bytes()
    expected = _stdlib_parts(raw)
    if expected is None:
        return
    try:
        tree = parse_structure(raw)
    except TooComplex:
        pytest.fail("the stdlib parses this message, the structure parser gave up")
    ours = []
    for part in tree.walk():
        assert isinstance(part, Part)
        body = None if part.is_multipart() else part.body
        ours.append((part.items(), part.ctype, part.defect_names, body, part.get_default_type()))
    assert ours == expected


def _header(part: dict[str, Any], name: str) -> Any:
    for header in part["headers"]:
        if header["name"] == name:
            return header["value"]
    return None


def _expected_addresses(value: Any) -> list[tuple[str | None, str]] | None:
    if not isinstance(value, dict) or "Address" not in value:
        return None
    body = value["Address"]
    entries: list[dict[str, Any]] = []
    if "List" in body:
        entries = body["List"]
    elif "Group" in body:
        for group in body["Group"]:
            entries.extend(group.get("addresses") or [])
    return [(e.get("name"), e["address"]) for e in entries if "@" in (e.get("address") or "")]


def _attachment_name(part: dict[str, Any]) -> str | None:
    for header_name, attribute in (("content_disposition", "filename"), ("content_type", "name")):
        value = _header(part, header_name)
        if isinstance(value, dict) and "ContentType" in value:
            for attr in value["ContentType"].get("attributes") or []:
                if attr["name"] == attribute and attr["value"]:
                    return str(attr["value"])
    return None


@pytest.mark.parametrize("path", _params(STALWART), ids=_ids(STALWART) or None)
def test_headers_and_attachment_names_agree_with_stalwart(path: Path) -> None:
    expected = json.loads(path.read_text())
    try:
        msg = normalize(path.with_suffix(".eml").read_bytes()).message
    except MimeError as exc:
        pytest.fail(f"stalwart parses this message, we quarantined it: {exc.code}")
    top = expected["parts"][0]

    subject = _header(top, "subject")
    if isinstance(subject, dict) and "Text" in subject:
        assert _ws(msg.subject or "") == _ws(subject["Text"])

    for field, ours in (("from", msg.from_), ("to", msg.to), ("cc", msg.cc)):
        want = _expected_addresses(_header(top, field))
        if want is None:
            continue
        got = [(a.name, a.address.lower()) for a in ours]
        assert [a for _, a in got] == [a.lower() for _, a in want], field
        for (got_name, _), (want_name, _) in zip(got, want, strict=True):
            if want_name:
                assert _ws(got_name or "") == _ws(want_name), field

    our_names = {a.filename for a in msg.attachments}
    for index in expected["attachments"]:
        name = _attachment_name(expected["parts"][index])
        if name:
            assert _ws(re.split(r"[\\/]", name)[-1]) in our_names


def _listed(path: Path) -> set[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return {n.replace("_", " ") for n in names if n not in {"body.rtf", "body.html"}}


@pytest.mark.parametrize("path", _params(TNEF_FILES), ids=_ids(TNEF_FILES) or None)
def test_tnef_attachment_names_agree_with_the_listing(path: Path) -> None:
    try:
        content = unpack_tnef(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - normalize() keeps such a file as an opaque attachment
        failure = type(exc).__name__
        listing = path.with_suffix(".list")
        assert not listing.exists() or not _listed(listing), f"{failure} on a file with a listing"
        return
    listing = path.with_suffix(".list")
    if not listing.exists():
        return
    ours = {(f.filename or "").replace("_", " ") for f in content.files}
    missing = _listed(listing) - ours
    assert not missing, f"missing {sorted(missing)}; we found {sorted(ours)}"
