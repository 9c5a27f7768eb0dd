"""Header fields as compose writes them: folded here, written byte for byte by the generator.

Why not the stdlib's header registry (`msg["Subject"] = value`):

- it parses the value on assignment, decoding RFC 2047 encoded words, and refolds the decoded
  text: `=?utf-8?b?SGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?=` (CR LF + "Bcc: ...") became a second
  header, and a literal encoded word a user typed was decoded instead of sent as typed;
- its folder can put the comma that separates two mailboxes inside an encoded word (real-world
  case 14: "Löstname, Firstname - COMPANY" and "Smith, Ann" became one mailbox on Python 3.11).

So every field value is written here, from the draft's text, and the result is checked by
`mailbridge.compose.verify` after generation:

- unstructured text (Subject, RFC 5322 section 3.6.5): as is when it is printable ASCII with no
  "=?" in it, else entirely as UTF-8 encoded words (RFC 2047 section 5(1)); readers ignore the
  white space between adjacent encoded words (RFC 2047 section 6.2), so it decodes exactly;
- display names (RFC 5322 section 3.4 phrase): atoms, else one quoted-string, else word by word:
  atoms and quoted-strings for ASCII words, encoded words (RFC 2047 section 5(3), the restricted
  Q alphabet or B) for runs of the others, so adjacent encoded words only occur inside a run too
  long for one word; the separating comma always stays a plain "," after the `<address>`;
- file names (RFC 2183 filename): a quoted-string when plain ASCII, else RFC 2231 extended
  parameters (`filename*0*=utf-8''...`), split into sections at character boundaries;
- lines are folded only at the white space between tokens (RFC 5322 section 2.2.3), at most
  76 characters when possible (RFC 2047 section 2), never a line of white space only.

Values reach these functions already checked (`compose.build` refuses control characters and
unencodable text), so nothing here raises on content.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from email.policy import Policy

from mailbridge.models.email import EmailAddress

MAX_LINE = 76
# An encoded word is at most 75 characters (RFC 2047 section 2); 64 lets "Reply-To: " and one
# word share the first line.
_WORD_MAX = 64
_WORD_OVERHEAD = len("=?utf-8?q??=")
_CAPACITY = _WORD_MAX - _WORD_OVERHEAD
# RFC 2047 section 5(3): the characters a Q-encoded word in a phrase may carry as themselves.
_Q_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 5322 section 3.2.3 atext.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_PRINTABLE = re.compile(r"[ -~]*")
# RFC 2231 section 7 attribute-char: what an extended parameter value carries unencoded.
_ATTRIBUTE_CHAR = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`{|}~")
_QUOTED_MAX = 60
_SECTION_MAX = 48


class WrittenHeader(str):
    """A field folded by this module. The generator writes it verbatim: `EmailPolicy` keeps a
    value whose `name` matches the field (header_store_parse) and folds a header object by
    calling its `fold` (EmailPolicy.fold), as the `email.policy` documentation describes.

    The string value is the field body as written, unfolded.
    """

    name: str
    _lines: tuple[str, ...]

    def __new__(cls, name: str, lines: list[str]) -> WrittenHeader:
        # Unfolding (RFC 5322 section 2.2.3) removes the line breaks; each later line starts with
        # the space it was folded at.
        self = super().__new__(cls, "".join(lines)[len(name) + 1 :].strip())
        self.name = name
        self._lines = tuple(lines)
        return self

    def fold(self, *, policy: Policy) -> str:
        return policy.linesep.join(self._lines) + policy.linesep


def _folded(name: str, tokens: list[str]) -> WrittenHeader:
    """`name: token token ...`, one space between tokens, a line break before a token when the
    line would pass MAX_LINE. An empty token stands for one more space (a run of spaces)."""
    lines: list[str] = []
    line = f"{name}:"
    placed = False
    for token in tokens:
        if token and placed and len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = ""
        line = f"{line} {token}"
        placed = placed or bool(token)
    lines.append(line)
    return WrittenHeader(name, lines)


# -- RFC 2047 encoded words -----------------------------------------------------------------------


def _q_size(char: str) -> int:
    return 1 if char in _Q_LITERAL or char == " " else 3 * len(char.encode("utf-8"))


def _b_size(octets: int) -> int:
    return 4 * -(-octets // 3)


def _encode_word(text: str) -> str:
    data = text.encode("utf-8")
    q = "".join(
        char if char in _Q_LITERAL else "_" if char == " " else "".join(f"={b:02X}" for b in char.encode())
        for char in text
    )
    b = base64.b64encode(data).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="


def _chunk_end(text: str, start: int) -> int:
    q = octets = 0
    end = start
    while end < len(text):
        char = text[end]
        q += _q_size(char)
        octets += len(char.encode("utf-8"))
        if min(q, _b_size(octets)) > _CAPACITY and end > start:
            break
        end += 1
    if end < len(text):
        # Prefer to end a word after a space: readers that (against RFC 2047 section 6.2) keep
        # the white space between encoded words then show two spaces, not a split word.
        space = text.rfind(" ", start, end)
        if space > start:
            end = space + 1
    return end


def _chunks(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    while start < len(text):
        end = _chunk_end(text, start)
        out.append(text[start:end])
        start = end
    return out


def encoded_words(text: str) -> list[str]:
    """UTF-8 encoded words that decode, concatenated, to exactly `text`; each at most 64 chars."""
    return [_encode_word(chunk) for chunk in _chunks(text)]


# -- unstructured ---------------------------------------------------------------------------------


def _plain(text: str) -> bool:
    return (
        _PRINTABLE.fullmatch(text) is not None
        and "=?" not in text
        and text == text.strip()
        and all(len(word) <= MAX_LINE - 12 for word in text.split(" "))
    )


def unstructured(name: str, text: str) -> WrittenHeader:
    """An unstructured field (Subject) whose decoded value is exactly `text`."""
    if _plain(text):
        return _folded(name, text.split(" "))
    return _folded(name, encoded_words(text))


# -- addresses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    """A display name as written: its tokens, and what `email.headerregistry` reads back.

    An RFC 2047 reader gets the name itself. The stdlib's phrase parser keeps the white space
    between two adjacent encoded words (RFC 2047 section 6.2 says to drop it), so for a name
    whose encoded run needed more than one word it reads a space at each such join.
    """

    tokens: list[str]
    stdlib_reading: str


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ascii_safe(text: str) -> bool:
    return _PRINTABLE.fullmatch(text) is not None and "=?" not in text


def phrase(name: str) -> Phrase:
    """Tokens for a display name that decodes to exactly `name` (see the module docstring)."""
    words = name.split(" ")
    regular = all(words)  # single spaces between words, none at either end
    if regular and all(_ATOM.fullmatch(word) and "=?" not in word for word in words):
        return Phrase(words, name)
    if _ascii_safe(name) and (len(name) <= _QUOTED_MAX or not regular):
        return Phrase([_quoted(name)], name)
    if not regular:
        chunks = _chunks(name)
        return Phrase([_encode_word(chunk) for chunk in chunks], " ".join(chunks))
    tokens: list[str] = []
    readings: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            chunks = _chunks(" ".join(run))
            tokens.extend(_encode_word(chunk) for chunk in chunks)
            readings.extend(chunks)
            run.clear()

    for word in words:
        if _ascii_safe(word) and len(word) <= _QUOTED_MAX:
            flush()
            tokens.append(word if _ATOM.fullmatch(word) else _quoted(word))
            readings.append(word)
        else:
            run.append(word)
    flush()
    return Phrase(tokens, " ".join(readings))


@dataclass(frozen=True)
class Mailbox:
    """One mailbox as written: the draft's name and address, and the stdlib's reading of the name."""

    name: str | None
    address: str
    stdlib_name: str


def address_list(name: str, values: list[EmailAddress]) -> tuple[WrittenHeader, list[Mailbox]]:
    """An address field (From, To, Cc, Reply-To; RFC 5322 section 3.4 and 3.6.2/3.6.3).

    Each mailbox is `phrase <addr-spec>` or a bare addr-spec; the "," after each but the last is
    outside every encoded word and quoted-string.
    """
    tokens: list[str] = []
    written: list[Mailbox] = []
    for index, value in enumerate(values):
        comma = "," if index < len(values) - 1 else ""
        display = value.name or None
        if display:
            words = phrase(display)
            tokens.extend(words.tokens)
            tokens.append(f"<{value.address}>{comma}")
            written.append(Mailbox(display, value.address, words.stdlib_reading))
        else:
            tokens.append(f"{value.address}{comma}")
            written.append(Mailbox(None, value.address, ""))
    return _folded(name, tokens), written


def message_ids(name: str, ids: list[str]) -> WrittenHeader:
    """Message-ID / In-Reply-To / References (RFC 5322 section 3.6.4): `<id>` tokens, folded
    between ids, never inside one (a long id stays on its own line, under 998 octets)."""
    return _folded(name, [f"<{value}>" for value in ids])


def plain(name: str, value: str) -> WrittenHeader:
    """A field whose value compose made itself (Date, MIME-Version): ASCII, no folding needed."""
    return _folded(name, value.split(" "))


# -- MIME parameters ------------------------------------------------------------------------------


def _rfc2231_sections(text: str) -> list[str]:
    """Percent-encoded UTF-8 (RFC 2231 section 4), cut between characters into short sections."""
    sections: list[str] = []
    current = ""
    for char in text:
        encoded = char if char in _ATTRIBUTE_CHAR else "".join(f"%{b:02X}" for b in char.encode("utf-8"))
        if current and len(current) + len(encoded) > _SECTION_MAX:
            sections.append(current)
            current = ""
        current += encoded
    sections.append(current)
    return sections


def content_disposition(kind: str, filename: str | None) -> WrittenHeader:
    """`attachment` / `inline` (RFC 2183) with the file name read back exactly by MIME readers."""
    if not filename:
        return _folded("Content-Disposition", [kind])
    if _ascii_safe(filename) and filename == filename.strip() and len(filename) <= _QUOTED_MAX:
        return _folded("Content-Disposition", [f"{kind};", f"filename={_quoted(filename)}"])
    sections = _rfc2231_sections(filename)
    if len(sections) == 1:
        params = [f"filename*=utf-8''{sections[0]}"]
    else:
        params = [
            f"filename*{index}*={'utf-8' + chr(39) * 2 if index == 0 else ''}{section}"
            + (";" if index < len(sections) - 1 else "")
            for index, section in enumerate(sections)
        ]
    return _folded("Content-Disposition", [f"{kind};", *params])


def content_id(value: str) -> WrittenHeader:
    """`Content-ID: <value>` (RFC 2392); `value` is already a checked id without brackets."""
    return _folded("Content-ID", [f"<{value}>"])
