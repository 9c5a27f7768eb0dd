"""Address headers (RFC 5322 section 3.4) -> EmailAddress lists, groups flattened, names decoded.

A small tokenizer over the raw value instead of `policy.default`'s address parser (the normalizer's
largest cost) or `email.utils.getaddresses` (whose results changed across 3.11 patch releases for
CVE-2023-27043 and which reads a comment as a name). The rules, lenient where real mail is:

- Tokens: quoted strings and comments (nested, with quoted pairs), domain literals, the specials
  `< > , : ; @ .`, runs of anything else. An unterminated quote or comment runs to the end.
- A mailbox with an angle address is whatever stands between `<` and `>` (after an obsolete
  source route, RFC 5322 section 4.4); the words before `<` are only its display name, even when
  they look like an address ("ann@example.test <ann.smith@example.test>", or
  "alice@example.org)<bob@example.com>" from CVE-2023-27043). Anything after `>` is ignored, so
  a second angle address without a comma between is not turned into a second person.
- Without `<>`, the mailbox is the addr-spec (the word with the `@`; words before it are its
  name, several such words several mailboxes); comments are never names. An addr-spec needs
  exactly one `@` outside quotes.
- A group (`name: a, b;`) contributes its members; commas and semicolons outside quotes,
  comments and angle brackets separate mailboxes; an empty element is skipped.
- Display names: words joined by one space, quoted pairs unescaped, RFC 2047 words decoded
  (also inside quotes, which RFC 2047 section 5 forbids but mailers do).
- A mailbox without a domain ("undisclosed-recipients", a bare name) is dropped: no reply or CRM
  contact can be made from it.
"""

from __future__ import annotations

import re
from typing import Final

from mailbridge.mime.headers import decode_words, raw_values, unfold
from mailbridge.mime.text import clean_header_text, unsurrogate
from mailbridge.models.email import EmailAddress

_TOKEN = re.compile(
    r"""
      (?P<ws>[ \t\r\n]+)
    | (?P<quoted>"(?:[^"\\]|\\.)*(?:"|\Z))
    | (?P<comment>\()
    | (?P<literal>\[(?:[^\]\\]|\\.)*(?:\]|\Z))
    | (?P<special>[<>,:;@.])
    | (?P<atom>[^ \t\r\n"()\[<>,:;@.]+|[\])])
    """,
    re.VERBOSE | re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# The usual shapes, read in one step with the same outcome as the general path: `local@domain`,
# `"Quoted Name" <local@domain>`, `Plain Name <local@domain>` (no comments, groups, specials in
# the name, domain literals or quoted local parts), then a comma or the end.
_SPEC = r"[^\s\"(),:;<>@\[\]\\]+@[^\s\"(),:;<>@\[\]\\]+"
_SIMPLE_MAILBOX = re.compile(
    rf"""[ \t\r\n]*(?:
        (?P<spec>{_SPEC})
      | (?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<words>[^\s"(),:;<>@\[\]\\][^"(),:;<>@\[\]\\]*?))?
        [ \t\r\n]*<(?P<angle>{_SPEC})>
    )[ \t\r\n]*(?:,|\Z)""",
    re.VERBOSE | re.DOTALL,
)

WS: Final = "ws"
QUOTED: Final = "quoted"
COMMENT: Final = "comment"
LITERAL: Final = "literal"
SPECIAL: Final = "special"
ATOM: Final = "atom"

Token = tuple[str, str]


def _skip_comment(value: str, start: int) -> int:
    """The index after the comment that opens at `start` (RFC 5322 comments nest)."""
    depth = 0
    index = start
    while index < len(value):
        char = value[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return len(value)


def tokenize(value: str) -> list[Token]:
    if "(" not in value:
        # No comments: the pattern alone splits the value (one pass in C).
        return [(found.lastgroup or ATOM, found.group()) for found in _TOKEN.finditer(value)]
    tokens: list[Token] = []
    position = 0
    while position < len(value):
        found = _TOKEN.match(value, position)
        if found is None:  # pragma: no cover - the atom alternative takes any other character
            position += 1
            continue
        kind = found.lastgroup or ATOM
        if kind == COMMENT:
            end = _skip_comment(value, position)
            tokens.append((COMMENT, value[position:end]))
            position = end
            continue
        tokens.append((kind, found.group()))
        position = found.end()
    return tokens


def _unquote(text: str) -> str:
    inner = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
    return _QUOTED_PAIR.sub(r"\1", inner)


def _elements(tokens: list[Token]) -> list[list[Token]]:
    """Split at `,` and `;` outside angle brackets; drop group names (the phrase before `:`). A
    `:` after something that is no phrase (an address, an angle bracket) opens no group: it and
    what follows up to the next separator are not read ("b@x.test Bcc: eve@x.test" is b alone)."""
    elements: list[list[Token]] = []
    current: list[Token] = []
    in_angle = False
    junk = False
    addressed = False  # `current` holds an `@`, `<` or `>`
    for token in tokens:
        kind, text = token
        if kind == SPECIAL:
            if text == "<":
                in_angle = True
            elif text == ">":
                in_angle = False
            elif not in_angle and text in ",;":
                elements.append(current)
                current = []
                junk = addressed = False
                continue
            elif not in_angle and text == ":":
                if addressed:
                    junk = True
                else:
                    current = []  # the group's display name
                continue
            if not junk and text in "@<>":
                addressed = True
        if not junk:
            current.append(token)
    elements.append(current)
    return [e for e in elements if any(kind not in (WS, COMMENT) for kind, _ in e)]


def _phrase(tokens: list[Token]) -> str:
    words: list[str] = []
    pending_space = False
    for kind, text in tokens:
        if kind in (WS, COMMENT):
            pending_space = bool(words)
            continue
        word = _unquote(text) if kind == QUOTED else text
        if pending_space and words:
            words.append(" ")
        words.append(word)
        pending_space = False
    return "".join(words)


def _is_special(token: Token, chars: str) -> bool:
    return token[0] == SPECIAL and token[1] in chars


def _addr_spec(tokens: list[Token]) -> tuple[str, str]:
    """(local part, domain) of an addr-spec; whitespace and comments between its pieces (allowed
    by the obsolete syntax, RFC 5322 section 4.4) are dropped. Not exactly one `@` outside
    quotes: no usable mailbox ("", "")."""
    pieces = [(kind, text) for kind, text in tokens if kind not in (WS, COMMENT)]
    ats = [i for i, token in enumerate(pieces) if _is_special(token, "@")]
    if len(ats) != 1:
        return "", ""
    local = "".join(_unquote(t) if k == QUOTED else t for k, t in pieces[: ats[0]])
    domain = "".join(t for _, t in pieces[ats[0] + 1 :])
    return local, domain


def _words(tokens: list[Token]) -> list[list[Token]]:
    """Whitespace-separated words; whitespace next to `.` or `@` does not separate (the obsolete
    syntax allows it inside an addr-spec: "john . doe @ example.com")."""
    words: list[list[Token]] = []
    gap = False
    for token in tokens:
        if token[0] in (WS, COMMENT):
            gap = True
            continue
        joined = words and not (gap and not _is_special(words[-1][-1], ".@") and not _is_special(token, ".@"))
        if joined:
            words[-1].append(token)
        else:
            words.append([token])
        gap = False
    return words


def _mailboxes(tokens: list[Token]) -> list[tuple[str | None, str, str]]:
    """(display name, local part, domain) of the mailboxes in one list element."""
    opener = next((i for i, token in enumerate(tokens) if _is_special(token, "<")), None)
    if opener is None:
        # No angle address: the word with the `@` is the mailbox and the words before it its
        # name ("Big Bug bb@bug.com"); several such words, as in "a@x.com b@x.com", are several
        # mailboxes (a missing comma), never one made of both.
        words = _words(tokens)
        found = [i for i, word in enumerate(words) if any(_is_special(t, "@") for t in word)]
        if len(found) != 1:
            return [(None, *_addr_spec(words[i])) for i in found]
        name = _phrase([t for word in words[: found[0]] for t in (*word, (WS, " "))])
        return [(name or None, *_addr_spec(words[found[0]]))]
    closer = next((i for i in range(opener + 1, len(tokens)) if _is_special(tokens[i], ">")), len(tokens))
    inside = tokens[opener + 1 : closer]
    route_end = max((i for i, token in enumerate(inside) if _is_special(token, ":")), default=-1)
    local, domain = _addr_spec(inside[route_end + 1 :])
    name = _phrase(tokens[:opener])
    return [(name or None, local, domain)]


def make_address(name: str | None, local: str, domain: str) -> EmailAddress | None:
    local = clean_header_text(local)
    domain = clean_header_text(domain).lower().strip(".")
    display = clean_header_text(name).strip("\"' ") if name else ""
    # Without a domain it is a phrase or a local-only name ("Moderator-Address", "undisclosed"):
    # nothing a reply or a CRM contact could use.
    if not local or not domain:
        return None
    return EmailAddress(name=display or None, address=f"{local}@{domain}")


def _simple(value: str) -> list[tuple[str | None, str, str]] | None:
    """The mailboxes of a list made only of the usual shapes, or None (then the general path)."""
    found: list[tuple[str | None, str, str]] = []
    position = 0
    end = len(value.rstrip(" \t\r\n"))
    while position < end:
        mailbox = _SIMPLE_MAILBOX.match(value, position)
        if mailbox is None:
            return None
        spec = mailbox.group("spec") or mailbox.group("angle")
        local, _, domain = spec.partition("@")
        quoted = mailbox.group("quoted")
        words = mailbox.group("words")
        name = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else " ".join((words or "").split())
        found.append((name or None, local, domain))
        position = mailbox.end()
    return found


def parse_addresses(value: str) -> list[EmailAddress]:
    """Every usable mailbox in one raw address-list value, in order."""
    out: list[EmailAddress] = []
    unfolded = unfold(value)
    mailboxes = _simple(unfolded)
    if mailboxes is None:
        mailboxes = [m for element in _elements(tokenize(unfolded)) for m in _mailboxes(element)]
    for name, local, domain in mailboxes:
        decoded = decode_words(unsurrogate(name)) if name else None
        made = make_address(decoded, local, domain)
        if made is not None:
            out.append(made)
    return out


def addresses(part: object, name: str) -> list[EmailAddress]:
    """The mailboxes of every `name` header of a part (To, Cc, From ...), in order."""
    out: list[EmailAddress] = []
    for value in raw_values(part, name):
        out.extend(parse_addresses(value))
    return out
