"""Plain text from HTML, for messages that have only an HTML body (snippet, search, AI).

The maintained converters either pull in lxml (inscriptis, a large binary for the layer) or are
GPL and emit Markdown (html2text); we only need readable text with paragraph breaks. Tokenizing
follows the stdlib `html.parser.HTMLParser` (Python 3.11, `convert_charrefs=True`) step by step,
with its own patterns, so the text is what that parser would give; it is a loop over the markup
instead of the parser's per-character bookkeeping (line and column counting, attribute lists,
handler dispatch), which made HTML-only mail the slowest to normalize. Where the stdlib parser
raises (`<![name` that is not a known marked section), this reads a bogus comment instead, as
browsers do (HTML Living Standard, "bogus comment state").
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import (  # type: ignore[attr-defined] # the stdlib tokenizer's own patterns
    attrfind_tolerant,
    endendtag,
    endtagfind,
    locatestarttagend_tolerant,
    piclose,
    starttagopen,
    tagfind_tolerant,
)

_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
    "tr", "ul", "title",
}  # fmt: skip
_SKIP = {"script", "style", "head", "noscript", "template", "iframe", "object", "svg"}
_CELL = {"td", "th"}
_CDATA = ("script", "style")  # HTMLParser.CDATA_CONTENT_ELEMENTS
_SPACES = re.compile(r"[ \t\u00a0\u200b\ufeff]+")
_WS = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
_COMMENT_CLOSE = re.compile(r"--\s*>")
_MARKED_SECTION_CLOSE = re.compile(r"]\s*]\s*>")
_MS_MARKED_SECTION_CLOSE = re.compile(r"]\s*>")
_DECL_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*\s*")
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Text up to where markup can start ("<" before anything else is text: HTMLParser hands it over
# as text, which joined with the text around it changes nothing), with the processing
# instructions in it (they leave no text); then the common constructs, read in the same step with
# the same outcome as the general path below: a start tag without attributes, an end tag.
# Every run is possessive (`*+`): no character a run gives back could let what follows it match,
# so the match is the same, without the engine keeping a way back at each character (about 4x
# faster on a megabyte of markup).
_CHUNK = re.compile(
    r"(?P<text>[^<]*+(?:(?:<(?![a-zA-Z/!?])|<\?[^>]*+>)[^<]*+)*+)"
    r"(?:<(?P<start>[a-zA-Z][^\t\n\r\f />\x00]*+)\s*+(?P<empty>/)?>"
    r"|</(?P<end>[a-zA-Z][-.a-zA-Z0-9:_]*+)\s*+>)?"
)
_PI = re.compile(r"<\?[^>]*>")
# Every character reference starts "&#" or "&" and a letter (the HTML named references all begin
# with one); text without such a pair is what html.unescape would return unchanged.
_REFERENCE = re.compile(r"&[#A-Za-z]")
# The common constructs, read in one step; the same outcome as the general path below for them:
# a start tag without attributes, an end tag, a processing instruction.
_SIMPLE = re.compile(
    r"<(?P<start>[a-zA-Z][^\t\n\r\f />\x00]*)\s*(?P<empty>/)?>"
    r"|</(?P<end>[a-zA-Z][-.a-zA-Z0-9:_]*)\s*>"
    r"|<\?[^>]*>"
)


class _Text:
    """What the text keeps of the token stream (the handlers of the old HTMLParser subclass)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def start(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELL:
            self.parts.append(" ")

    def start_end(self, tag: str) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def end(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCK and tag != "br":
            self.parts.append("\n")

    def data(self, text: str) -> None:
        if not self.skip and text:
            self.parts.append(text if self.pre else _collapse(text))


def _collapse(text: str) -> str:
    """`re.sub(r"\\s+", " ", text)` (str.split and the pattern's \\s agree on what is
    whitespace), without a pattern pass over large text."""
    words = text.split()
    if not words:
        return " "
    lead = " " if text[0].isspace() else ""
    trail = " " if text[-1].isspace() else ""
    return lead + " ".join(words) + trail


def _line(line: str) -> str:
    """One output line: runs of spaces (and no-break, zero-width spaces, BOMs) as one, trimmed."""
    if "  " in line or any(c in line for c in "\t\u00a0\u200b\ufeff"):
        line = _SPACES.sub(" ", line)
    return line.strip()


def _whole_start_tag(raw: str, i: int) -> int:
    """HTMLParser.check_for_whole_start_tag: where the start tag at `i` ends, or -1."""
    found = locatestarttagend_tolerant.match(raw, i)
    j = found.end() if found else i
    following = raw[j : j + 1]
    if following == ">":
        return j + 1
    if following == "/":
        if raw.startswith("/>", j):
            return j + 2
        return -1
    if following == "" or following in _LETTERS + "=/":
        return -1
    return j if j > i else i + 1


def _start_tag(raw: str, i: int, out: _Text) -> tuple[int, str | None]:
    """HTMLParser.parse_starttag: (end, the tag if it opens a script/style raw-text element)."""
    end = _whole_start_tag(raw, i)
    if end < 0:
        return end, None
    found = tagfind_tolerant.match(raw, i + 1)
    if found is None:  # pragma: no cover - starttagopen matched, so a name is there
        return end, None
    position = found.end()
    tag = found.group(1).lower()
    while position < end:
        attribute = attrfind_tolerant.match(raw, position)
        if attribute is None:
            break
        position = attribute.end()
    closing = raw[position:end].strip()
    if closing not in (">", "/>"):
        out.data(raw[i:end])
        return end, None
    if closing.endswith("/>"):
        out.start_end(tag)
        return end, None
    out.start(tag)
    return end, tag if tag in _CDATA else None


def _end_tag(raw: str, i: int, out: _Text, cdata: str | None) -> tuple[int, str | None]:  # noqa: PLR0911 - the stdlib's cases, one by one
    """HTMLParser.parse_endtag: (end, the raw-text element still open)."""
    found = endendtag.search(raw, i + 1)
    if found is None:
        return -1, cdata
    gtpos = found.end()
    named = endtagfind.match(raw, i)
    if named is None:
        if cdata is not None:
            out.data(raw[i:gtpos])
            return gtpos, cdata
        name = tagfind_tolerant.match(raw, i + 2)
        if name is None:
            if raw[i : i + 3] == "</>":
                return i + 3, cdata
            return _bogus_comment(raw, i), cdata
        out.end(name.group(1).lower())
        return raw.find(">", name.end()) + 1, cdata
    element = named.group(1).lower()
    if cdata is not None and element != cdata:
        out.data(raw[i:gtpos])
        return gtpos, cdata
    out.end(element)
    return gtpos, None


def _bogus_comment(raw: str, i: int) -> int:
    close = raw.find(">", i + 2)
    return -1 if close == -1 else close + 1


def _declaration(raw: str, i: int) -> int:
    """HTMLParser.parse_html_declaration (comments, marked sections, doctype, bogus comments)."""
    if raw.startswith("<!--", i):
        comment_end = _COMMENT_CLOSE.search(raw, i + 4)
        return comment_end.end() if comment_end else -1
    if raw.startswith("<![", i):
        name = _DECL_NAME.match(raw, i + 3)
        if name is None or name.end() == len(raw):
            return -1 if name is not None or i + 3 == len(raw) else _bogus_comment(raw, i)
        keyword = name.group().strip().lower()
        if keyword in {"temp", "cdata", "ignore", "include", "rcdata"}:
            close = _MARKED_SECTION_CLOSE.search(raw, i + 3)
        elif keyword in {"if", "else", "endif"}:
            close = _MS_MARKED_SECTION_CLOSE.search(raw, i + 3)
        else:
            return _bogus_comment(raw, i)
        return close.end() if close else -1
    if raw[i : i + 9].lower() == "<!doctype":
        gtpos = raw.find(">", i + 9)
        return -1 if gtpos == -1 else gtpos + 1
    return _bogus_comment(raw, i)


def _markup(raw: str, i: int, out: _Text, cdata: str | None) -> tuple[int, str | None]:
    """One construct at a `<`: (where it ends or -1 when it does not, raw-text element)."""
    if starttagopen.match(raw, i):
        return _start_tag(raw, i, out)
    if raw.startswith("</", i):
        return _end_tag(raw, i, out, cdata)
    if raw.startswith("<!--", i) or raw.startswith("<!", i):
        return _declaration(raw, i), cdata
    if raw.startswith("<?", i):
        close = piclose.search(raw, i + 2)
        return (close.end() if close else -1), cdata
    out.data("<")
    return i + 1, cdata


def _unescape(text: str) -> str:
    return unescape(text) if _REFERENCE.search(text) else text


def _text(text: str, out: _Text) -> None:
    """Text between markup, processing instructions dropped. HTMLParser reads the pieces around
    each instruction separately; joined, they give the same text unless a character reference
    could span a joint, so they are joined only when the whole has no reference at all (and the
    whitespace runs that meet at a joint collapse to one space in html_to_text either way)."""
    if "<?" not in text:
        out.data(_unescape(text))
        return
    joined = _PI.sub("", text)  # "".join(_PI.split(text)), without the list of pieces
    if _REFERENCE.search(joined) is None:
        out.data(joined)
        return
    for piece in _PI.split(text):
        if piece:
            out.data(unescape(piece))


def _closer(cdata: str) -> re.Pattern[str]:
    """HTMLParser.set_cdata_mode: what ends a script/style element's raw text."""
    return re.compile(rf"</\s*{cdata}\s*>", re.IGNORECASE)


def _chunk(raw: str, i: int, out: _Text) -> tuple[int, str | None, bool]:
    """Text and a simple construct at `i`: (where they end, a raw-text element opened, whether
    the general path must read the markup at the end position)."""
    chunk = _CHUNK.match(raw, i)
    assert chunk is not None  # every group is optional
    text, tag, empty, end_tag = chunk.groups()
    if text:
        _text(text, out)
    end = chunk.end()
    if tag is not None:
        tag = tag.lower()
        if empty:
            out.start_end(tag)
            return end, None, False
        out.start(tag)
        return end, tag if tag in _CDATA else None, False
    if end_tag is not None:
        out.end(end_tag.lower())
        return end, None, False
    return end, None, end < len(raw)


def _tokens(raw: str, out: _Text) -> None:
    """HTMLParser.feed + close (goahead), convert_charrefs=True."""
    n = len(raw)
    i = 0
    cdata: str | None = None
    while i < n:
        if cdata is None:
            i, cdata, general = _chunk(raw, i, out)
            if not general:
                continue
        else:
            found = _closer(cdata).search(raw, i)
            if found is None:
                return  # an unclosed <script>/<style> takes the rest of the document
            if i < found.start():
                out.data(raw[i : found.start()])
            i = found.start()
        k, cdata = _markup(raw, i, out, cdata)
        if k < 0:
            k = raw.find(">", i + 1)
            if k < 0:
                k = raw.find("<", i + 1)
                if k < 0:
                    k = i + 1
            else:
                k += 1
            out.data(_unescape(raw[i:k]) if cdata is None else raw[i:k])
        i = k


def html_to_text(html: str) -> str:
    out = _Text()
    _tokens(html, out)
    text = "".join(out.parts)
    lines = [_line(line) for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
