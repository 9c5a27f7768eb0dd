"""Raw bytes -> a tree of MIME parts (RFC 2045/2046), without decoding anything.

This is the stdlib feed parser's algorithm (`email.feedparser`, Python 3.11) ported to work on the
raw bytes with offsets: a header block is taken with one pattern match and a body by searching
for the next delimiter line, instead of reading both line by line through a stack of predicates,
and a part's body stays a slice of the input (embedded messages keep their exact bytes).
Profiling the normalizer on the shared corpus showed the feed parser alone taking about 40% of
what mail-parser needs for everything, so a 2x lead over mail-parser cannot be had on top of it.

What is kept from the feed parser, on purpose, so malformed mail comes out the same: lines end at
CRLF, CR or LF; a header block ends at the first line that is neither a header nor a continuation;
any enclosing boundary also ends a part; repeated boundary lines make no empty parts; a missing
start or close boundary and the other structural faults are recorded under the stdlib's defect
names (`StartBoundaryNotFoundDefect`, ...). A `message/*` body is parsed as a message, a
`message/delivery-status` body (RFC 3464) as a list of header blocks.

Bounds: at most `MAX_PARTS` parts and `MAX_DEPTH` levels; past either, `TooComplex` is raised.
"""

from __future__ import annotations

import re
from email.message import Message
from email.policy import compat32

from mailbridge.mime.headers import raw_values, unfold
from mailbridge.mime.params import param

MAX_PARTS = 10_000
MAX_DEPTH = 60

_EOL = re.compile(rb"\r\n|\r|\n")
# email.feedparser.headerRE, on bytes: a field name and colon, a continuation, or a mbox "From ".
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_BLANK_LINE = re.compile(rb"[\r\n]")
# A run of header and continuation lines (_HEADER_LINE at each line start), read in one step.
_HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[\t ])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
# A run of plain fields: a name, a colon and continuation lines. Where it stops, the header block
# ends unless _HEADER_LINE matches there: an mbox "From " line, a line that starts with ":" (a
# field without a name) or, at the start, a continuation line without a field; only a block with
# one of those needs the line-by-line reading of the feed parser (_Parser._set_headers).
_PLAIN_BLOCK = re.compile(
    rb"(?:[\x21-\x39\x3b-\x7e]++:[^\r\n]*+(?:\r\n|\r|\n|\Z)(?:[\t ][^\r\n]*+(?:\r\n|\r|\n|\Z))*+)*+"
)


class TooComplex(Exception):
    """More parts or deeper nesting than the bounds allow."""


class Part(Message):
    """One MIME entity: a stdlib compat32 `Message` (so `get_param`, `get_content_charset` and the
    other accessors keep their stdlib meaning) whose headers are the raw values as sent (folding
    kept, 8-bit bytes as surrogate escapes), plus:

    - `ctype`: the content type by RFC 2045 rules (`get_content_type`, computed once);
    - `body`: the body octets, still transfer-encoded; for a multipart the bytes that were not
      split into parts (only when no boundary was found);
    - `embedded()`: for `message/*`, the embedded message's (or RFC 3464 status blocks') octets
      as sent, still transfer-encoded, sliced from the input only when asked for, so nested
      messages do not hold copies of each other;
    - `children`: the parts of a multipart, the message of a `message/*` part;
    - `defect_names`: what the structure parse found wrong, by the stdlib's defect class names.
    """

    ctype: str
    # What Message.__init__(policy=compat32) sets (Python 3.11) and what most parts keep, as class
    # attributes: a message can have thousands of parts, and each instance then holds only what
    # is its own (fewer objects to make, and for the cyclic collector to look at, per part).
    policy = compat32
    _unixfrom = None
    _payload: list[Part] | None = None  # a multipart's parts (Message.attach)
    _charset = None
    preamble = None
    epilogue = None
    body: bytes = b""
    _source = b""
    _span = (0, 0)
    _defect_list: list[str] | None = None
    # Parameters already read, by (header, raw_8bit) (params.param); made on first use.
    param_cache: dict[tuple[str, bool], dict[str, str]] | None = None

    def __init__(self, default_type: str) -> None:
        self._headers: list[tuple[str, str]] = []
        self.defects = []
        self._default_type = default_type
        self.ctype = default_type
        self._index: dict[str, list[str]] = {}

    @property
    def defect_names(self) -> list[str]:
        return self._defect_list if self._defect_list is not None else []

    def add_defect(self, name: str) -> None:
        if self._defect_list is None:
            self._defect_list = [name]
        else:
            self._defect_list.append(name)

    def add_header_raw(self, name: str, value: str) -> None:
        """Message.set_raw, indexed by lower-cased name as it goes."""
        self.__dict__["_headers"].append((name, value))
        self._index.setdefault(name.lower(), []).append(value)

    def header_values(self, name: str) -> list[str]:
        """Every raw value of header `name` (case-insensitive), in order."""
        return self._index.get(name.lower(), [])

    def header_names(self) -> set[str]:
        """The lower-cased names of the headers this part has."""
        return set(self._index)

    def embedded(self) -> bytes:
        start, end = self._span
        return self._source[start:end]

    @property
    def children(self) -> list[Part]:
        """The parts of a multipart, the message of a `message/*` part (only the parser attaches
        parts, and only Part objects); the part's own list, not a copy: read it, do not change it."""
        payload = self._payload
        return payload if payload is not None else []


# What may follow "--" boundary on a delimiter line (email.feedparser's boundaryre): "--" on the
# close delimiter, then blanks and the line end.
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r\n|\r|\n)?\Z")
_DELIMITER_TAIL_IN_DATA = re.compile(rb"(?:--)?[ \t]*(?:[\r\n]|\Z)")


def delimiter_match(line: bytes, needle: bytes) -> re.Match[bytes] | None:
    """`line` (with its line end) is the delimiter `needle` ("--" + boundary) or its close form."""
    if not line.startswith(needle):
        return None
    return _DELIMITER_TAIL.match(line, len(needle))


class _Input:
    """The feed parser's BufferedSubFile over one bytes object: lines, pushed-back lines and a
    stack of "this line is an EOF": the enclosing delimiters ("--" + boundary), and blank lines
    inside RFC 3464 delivery-status blocks (None on the stack)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.pushed: list[bytes] = []
        self._eof: list[bytes | None] = []
        self._needles: tuple[bytes, ...] = ()
        self._blank_is_eof = False
        self._stacks: dict[tuple[bytes | None, ...], tuple[tuple[bytes, ...], bool]] = {}
        self._last_start = -1

    def push_eof(self, needle: bytes | None) -> None:
        self._eof.append(needle)
        self._changed()

    def pop_eof(self) -> None:
        self._eof.pop()
        self._changed()

    def _changed(self) -> None:
        key = tuple(self._eof)
        cached = self._stacks.get(key)
        if cached is None:
            # Innermost first: its delimiter is the nearest, which bounds the search for the others.
            cached = (tuple(dict.fromkeys(n for n in reversed(key) if n is not None)), None in key)
            self._stacks[key] = cached
        self._needles, self._blank_is_eof = cached

    def _is_eof(self, line: bytes) -> bool:
        if self._blank_is_eof and line[:1] in (b"\r", b"\n"):
            return True
        if not line.startswith(self._needles):
            return False
        return any(delimiter_match(line, needle) for needle in self._needles)

    def readline(self) -> bytes | None:
        """The next line with its line end, or None at the end of input or of the current part."""
        if self.pushed:
            line = self.pushed[-1]
            if self._is_eof(line):
                return None
            self._last_start = -1
            return self.pushed.pop()
        data = self.data
        start = self.pos
        if start >= len(data):
            return None
        found = _EOL.search(data, start)
        end = found.end() if found else len(data)
        line = data[start:end]
        if self._eof and self._is_eof(line):
            return None
        self.pos = end
        self._last_start = start
        return line

    def unreadline(self, line: bytes | None) -> None:
        # Pushing back the feed parser's "" (EOF) changes nothing: the next read sees EOF again.
        if line is None:
            return
        start = self._last_start
        if not self.pushed and start >= 0 and self.data[start : self.pos] == line:
            self.pos = start
        else:
            self.pushed.append(line)
        self._last_start = -1

    def _next_eof_line(self, start: int) -> int:
        """Where the first line at or after `start` that ends the part begins (or the data end)."""
        data = self.data
        if self._blank_is_eof:
            # Inside delivery-status blocks (a few short lines): line by line.
            pos = start
            while pos < len(data):
                found = _EOL.search(data, pos)
                end = found.end() if found else len(data)
                if self._is_eof(data[pos:end]):
                    return pos
                pos = end
            return pos
        best = len(data)
        for needle in self._needles:
            at = data.find(needle, start, best)
            while at != -1:
                # A delimiter counts only at a line start: after LF, or after a CR that is not
                # part of a CRLF (the character after it is "-", so any CR qualifies).
                line_start = at == start or data[at - 1] in b"\r\n"
                if line_start and _DELIMITER_TAIL_IN_DATA.match(data, at + len(needle)):
                    best = at
                    break
                at = data.find(needle, at + 1, best)
        return best

    def header_block(self) -> tuple[bytes, bool, bool] | None:
        """The header lines at the current position, as one bytes object, whether a non-header,
        non-EOF line ends them (email.feedparser's MissingHeaderBodySeparatorDefect) and whether
        they are plain fields only (_PLAIN_BLOCK); the blank line after them is consumed. None
        when the line-by-line path is needed (pushed-back lines, blank lines that end the part, a
        possible delimiter among the lines)."""
        if self.pushed or self._blank_is_eof:
            return None
        data = self.data
        start = self.pos
        found = _PLAIN_BLOCK.match(data, start)
        end = found.end() if found else start
        plain = not _HEADER_LINE.match(data, end)
        if not plain:
            found = _HEADER_BLOCK.match(data, start)
            end = found.end() if found else start
        block = data[start:end]
        if self._needles and (block.startswith(b"--") or b"\n--" in block or b"\r--" in block):
            return None
        self._last_start = -1
        if end >= len(data):
            self.pos = end
            return block, False, plain
        if data[end] in b"\r\n":
            self.pos = end + (2 if data.startswith(b"\r\n", end) else 1)
            return block, False, plain
        self.pos = end
        following = _EOL.search(data, end)
        line = data[end : following.end() if following else len(data)]
        return block, not (self._needles and self._is_eof(line)), plain

    def read_to_eof(self) -> bytes:
        """Everything up to the next EOF line (not included), as one bytes object."""
        head: list[bytes] = []
        while self.pushed:
            line = self.readline()
            if line is None:
                return b"".join(head)
            head.append(line)
        start = self.pos
        end = self._next_eof_line(start)
        self.pos = end
        self._last_start = -1
        body = self.data[start:end]
        return b"".join(head) + body if head else body


def _ascii(line: bytes) -> str:
    return line.decode("ascii", "surrogateescape")


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.input = _Input(data)
        self.count = 0
        self.last: Part | None = None

    def _new(self, parent: Part | None, depth: int) -> Part:
        self.count += 1
        if self.count > MAX_PARTS or depth > MAX_DEPTH:
            raise TooComplex
        default = (
            "message/rfc822" if parent is not None and parent.ctype == "multipart/digest" else "text/plain"
        )
        part = Part(default)
        if parent is not None:  # Message.attach
            if parent._payload is None:
                parent._payload = [part]
            else:
                parent._payload.append(part)
        self.last = part
        return part

    def parse(self) -> Part:
        root = self._message(None, 0)
        if root.ctype.startswith("multipart/") and not root.is_multipart():
            _defect(root, "MultipartInvariantViolationDefect")
        return root

    def _headers(self, part: Part) -> None:
        inp = self.input
        fast = inp.header_block()
        if fast is not None:
            block, missing_separator, plain = fast
            if missing_separator:
                _defect(part, "MissingHeaderBodySeparatorDefect")
            if plain:
                _set_fields(part, block)
            else:
                self._set_headers(part, block.splitlines(keepends=True))
            part.ctype = _content_type(part)
            return
        lines = []
        while True:
            line = inp.readline()
            if line is None:
                break
            if not _HEADER_LINE.match(line):
                if not _BLANK_LINE.match(line):
                    _defect(part, "MissingHeaderBodySeparatorDefect")
                    inp.unreadline(line)
                break
            lines.append(line)
        self._set_headers(part, lines)
        part.ctype = _content_type(part)

    def _set_headers(self, part: Part, lines: list[bytes]) -> None:
        """email.feedparser._parse_headers: unix-from lines, continuations, nameless fields."""
        field: list[bytes] = []  # the lines of the field being read
        for lineno, line in enumerate(lines):
            if line[:1] in (b" ", b"\t"):
                if not field:
                    _defect(part, "FirstHeaderLineIsContinuationDefect")
                    continue
                field.append(line)
                continue
            if field:
                part.add_header_raw(*_header(field))
                field = []
            if line.startswith(b"From "):
                if lineno == 0:
                    continue
                if lineno == len(lines) - 1:
                    self.input.unreadline(line)
                    return
                _defect(part, "MisplacedEnvelopeHeaderDefect")
                continue
            if line[:1] == b":":
                _defect(part, "InvalidHeaderDefect")
                continue
            field = [line]
        if field:
            part.add_header_raw(*_header(field))

    def _message(self, parent: Part | None, depth: int) -> Part:
        part = self._new(parent, depth)
        self._headers(part)
        ctype = part.ctype
        inp = self.input
        if ctype.startswith("message/"):
            start = inp.pos
            if ctype == "message/delivery-status":
                self._delivery_status(part, depth)
            else:
                self._message(part, depth + 1)
            part._source = inp.data
            part._span = (start, inp.pos)
        elif ctype.startswith("multipart/"):
            self._multipart(part, depth)
        else:
            part.body = inp.read_to_eof()
        return part

    def _delivery_status(self, part: Part, depth: int) -> None:
        """RFC 3464: header blocks separated by blank lines, each block a part of its own."""
        inp = self.input
        while True:
            inp.push_eof(None)
            self._message(part, depth + 1)
            inp.pop_eof()
            inp.readline()
            line = inp.readline()
            if line is None:
                break
            inp.unreadline(line)

    def _multipart(self, part: Part, depth: int) -> None:
        inp = self.input
        boundary = param(part, "Content-Type", "boundary", [], raw_8bit=True)
        if boundary is not None:
            boundary = boundary.rstrip()  # RFC 2046 5.1.1: a boundary cannot end in a space
        if not boundary:
            _defect(part, "NoBoundaryInMultipartDefect")
            part.body = inp.read_to_eof()
            return
        cte = raw_values(part, "Content-Transfer-Encoding")
        if cte and cte[0].lower() not in ("7bit", "8bit", "binary"):
            _defect(part, "InvalidMultipartContentTransferEncodingDefect")
        needle = b"--" + boundary.encode("ascii", "surrogateescape")
        preamble: list[bytes] = []
        in_preamble = True
        closed = False
        while True:
            line = inp.readline()
            if line is None:
                break
            found = delimiter_match(line, needle)
            if found is None:
                preamble.append(line)
                continue
            if found.group(1):
                closed = True
                break
            if in_preamble:
                in_preamble = False
                inp.unreadline(line)
                continue
            self._part(part, depth, needle)
        if in_preamble:
            _defect(part, "StartBoundaryNotFoundDefect")
            part.body = b"".join(preamble)
            inp.read_to_eof()
            return
        if not closed:
            _defect(part, "CloseBoundaryNotFoundDefect")
            return
        inp.read_to_eof()  # the epilogue

    def _part(self, parent: Part, depth: int, needle: bytes) -> None:
        """One body part after a delimiter line (repeated delimiter lines make no empty parts)."""
        inp = self.input
        while inp.pushed or inp.data.startswith(needle, inp.pos):
            line = inp.readline()
            if line is None or delimiter_match(line, needle) is None:
                inp.unreadline(line)
                break
        inp.push_eof(needle)
        child = self._message(parent, depth + 1)
        # RFC 2046 5.1.1: the line end before a delimiter belongs to the delimiter. The feed parser
        # strips it from the part created last (for a multipart: from its epilogue, not kept here).
        last = self.last
        if last is not None and not last.ctype.startswith("multipart/") and not last.is_multipart():
            last.body = _strip_eol(last.body)
        if child.ctype.startswith("message/") and child.is_multipart():
            start, end = child._span
            tail = inp.data[max(start, end - 2) : end]
            child._span = (start, end - (len(tail) - len(_strip_eol(tail))))
        inp.pop_eof()
        self.last = parent


# One field of such a block: the name, and the value after the colon with its folding kept and
# without the line end that closes the field (email.policy.Compat32.header_source_parse).
# (Possessive runs: nothing the pattern gives back could make it match.)
_FIELD = re.compile(r"([^:\r\n]*+):([^\r\n]*+(?:(?:\r\n|\r|\n)[ \t][^\r\n]*+)*+)")


def _set_fields(part: Part, block: bytes) -> None:
    """The fields of a block of plain fields (_PLAIN_BLOCK), added to `part` (Part.add_header_raw):
    read with one pattern instead of line by line (_Parser._set_headers), with the same result."""
    headers = part._headers
    index = part._index
    for name, raw in _FIELD.findall(block.decode("ascii", "surrogateescape")):
        value = raw.lstrip(" \t")
        headers.append((name, value))
        key = name.lower()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)


def _content_type(part: Part) -> str:
    """RFC 2045 section 5.2 (and Message.get_content_type): the first Content-Type, unfolded and
    lower-cased; text/plain when it is not type/subtype; the default type when there is none."""
    values = part._index.get("content-type")
    if not values:
        return part._default_type
    ctype = unfold(values[0]).split(";", 1)[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


def _header(lines: list[bytes]) -> tuple[str, str]:
    """email.policy.Compat32.header_source_parse: the name, and the value after the colon with
    its folding kept."""
    name, value = _ascii(lines[0] if len(lines) == 1 else b"".join(lines)).split(":", 1)
    return name, value.lstrip(" \t").rstrip("\r\n")


def _strip_eol(body: bytes) -> bytes:
    """Without its last line end (CRLF, CR or LF), if it has one."""
    if body.endswith(b"\r\n"):
        return body[:-2]
    if body.endswith((b"\r", b"\n")):
        return body[:-1]
    return body


def _defect(part: Part, name: str) -> None:
    part.add_defect(name)


def parse_structure(data: bytes) -> Part:
    """The part tree of one message. Raises TooComplex past the bounds; never anything else."""
    return _Parser(data).parse()
