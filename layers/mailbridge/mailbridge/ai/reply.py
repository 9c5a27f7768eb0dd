"""The new text of a reply, apart from the quoted history and the signature.

`split_reply(text)` reads a plain-text body (the text/plain part, or the text ingest derived from
an HTML-only body with `mime.html_text.html_to_text`) and returns `ReplyParts(reply_text,
signature)`, each None when empty. It is plain Python over at most `MAX_CHARS` characters, so the
API computes it on read (`GET /emails/{id}`) from the body it has already loaded.

Where the quoted history starts (the first of these, line by line):
- an attribution line ending in a "wrote:" verb, one to three lines joined (clients wrap it):
  Gmail "On Mon, Apr 2, 2012 at 6:26 PM, Megan <m@x> wrote:", Apple Mail "On 22 Aug 2015, at
  19:21, Adam <a@x> wrote:" (also quoted, "> On ..."), Thunderbird, and the localized forms
  ("Le ... a écrit :", "Am ... schrieb ...:", "El ... escribió:", "... пользователь ... написал:"
  ...), recognized when the line starts with the language's "On" or holds a digit (its date);
- Outlook's and AOL/Yahoo's separator "-----Original Message-----" (and localized titles),
  Gmail's "---------- Forwarded message ---------";
- Outlook's header block: "From:" followed within four lines by "Sent:" or "Date:" (with "To:"
  and "Subject:"), localized, also bold-marked ("*From:*"); this is what Outlook's
  `<div id="divRplyFwdMsg">` block becomes as text. A line of underscores or an `<hr>`-like rule
  just above belongs to it;
- a trailing block of `>` lines (RFC 3676 4.5 quote marks) with nothing unquoted after it.
When nothing unquoted precedes the attribution (an answer written between the quoted lines),
the reply text is the unquoted lines after it.

Where the signature starts, inside the reply text:
- the sig delimiter line "-- " (RFC 3676 4.3), also "--" (many clients trim the space);
- else a mobile client's sign-off ("Sent from my iPhone", "Get Outlook for iOS", localized);
- else a common closer ("Best regards,", "Thanks,", "Mit freundlichen Grüßen" ...) followed by at
  most `MAX_SIGNATURE_LINES` short lines to the end: those lines are the signature (the closer
  stays in the reply text).

No maintained library was used: the candidates are not in the layer (talon, last released 2017,
also pulls lxml and scikit-learn; email-reply-parser, 2020, knows only English "On ... wrote:";
mail-parser-reply and quotequail would fit but adding a dependency was not ours to decide).
"""

# ruff: noqa: RUF001 - the localized forms are Cyrillic, Turkish and CJK text (full-width colons) on purpose

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CHARS = 100_000
"""Characters of the body read; a reply's new text is at the top, far within this."""
MAX_SIGNATURE_LINES = 8
MAX_SIGNATURE_LINE_CHARS = 100

_VERBS = (
    r"wrote|writes|a écrit|a ecrit|schrieb|escribió|escribio|ha scritto|schreef|escreveu|"
    r"napisał\(a\)|napisała|napisał|skrev|kirjoitti|írta|napsal\(a\)|napsal|пишет|"
    r"написал\(а\)|написала|написал|yazdı|έγραψε|ha escrit|写道|寫道|が書きました|작성"
)
_ON = r"on|le|am|el|il|op|em|w dniu|den|på|dne|pada|vào|στις|в"
_ATTRIBUTION = re.compile(
    rf"^(?:>\s*)*(?:-{{2,}}\s*)?(?P<on>{_ON})?\b.{{0,300}}?(?:{_VERBS})(?:\s+.{{1,150}}[:：]|\s*[:：]?)\s*$",
    re.I,
)
# What the first line of a wrapped attribution holds: the "On" word, or a digit (its date).
_ATTRIBUTION_START = re.compile(rf"^(?:>\s*)*(?:-{{2,}}\s*)?(?:(?:{_ON})\b|.*\d)", re.I)
_SEPARATOR = re.compile(
    r"^(?:>\s*)*-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|"
    r"mensaje original|messaggio originale|oorspronkelijk bericht|mensagem original|"
    r"oprindelig meddelelse|opprinnelig melding|ursprungligt meddelande|alkuperäinen viesti|"
    r"исходное сообщение|wiadomość oryginalna|původní zpráva|eredeti üzenet|"
    r"forwarded message|weitergeleitete nachricht|message transféré)\s*-{2,}\s*$",
    re.I,
)
_FROM = re.compile(
    r"^\*?(?:from|von|de|da|van|od|från|fra|lähettäjä|от|feladó|kimden|发件人|寄件者|差出人)\s*\*?\s*[:：]",
    re.I,
)
_SENT = re.compile(
    r"^\*?(?:sent|date|gesendet|datum|envoyé|date d'envoi|enviado el|enviado|fecha|inviato|data|"
    r"verzonden|wysłano|skickat|sendt|lähetetty|отправлено|дата|elküldve|gönderildi|发送时间|"
    r"傳送時間|送信日時)\s*\*?\s*[:：]",
    re.I,
)
_RULE = re.compile(r"^\s*(?:_{8,}|-{8,}|={8,})\s*$")
_QUOTED = re.compile(r"^\s*>")
_SIG_DELIMITER = re.compile(r"^--\s?$")
_MOBILE = re.compile(
    r"^(?:sent from my \w+|sent from (?:outlook|mail|yahoo mail)\b|get outlook for \w+|"
    r"sent with \w+|von meinem \w+ gesendet|envoyé de mon \w+|enviado desde mi \w+|"
    r"inviato da(?:l mio)? \w+|verzonden vanaf mijn \w+|отправлено с \w+)",
    re.I,
)
_CLOSER = re.compile(
    r"^(?:(?:best|kind|warm|warmest|many|with)?\s*(?:regards|wishes|thanks)|best|thanks|thank you|"
    r"thanks again|many thanks|cheers|sincerely|yours(?: truly| sincerely)?|respectfully|br|"
    r"mit freundlichen grüßen|viele grüße|beste grüße|liebe grüße|grüße|cordialement|"
    r"bien à vous|bien cordialement|saludos|un saludo|atentamente|cordiali saluti|saluti|"
    r"met vriendelijke groet|groeten|pozdrawiam|med vänliga hälsningar|hälsningar|"
    r"med venlig hilsen|ystävällisin terveisin|с уважением|atenciosamente|abraços)"
    r"\s*[,.!]?\s*(?:\w+)?\s*$",
    re.I,
)


@dataclass(frozen=True)
class ReplyParts:
    reply_text: str | None
    signature: str | None


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines (1-3) from `i` form an attribution line; 0 when none does."""
    first = lines[i].strip()
    if not _ATTRIBUTION_START.match(first):
        return 0
    joined = ""
    for n in range(3):
        if i + n >= len(lines):
            return 0
        part = lines[i + n].strip()
        if n and (not part or (_QUOTED.match(part) and not _QUOTED.match(lines[i]))):
            return 0
        joined = f"{joined} {part}".strip() if n else part
        match = _ATTRIBUTION.match(joined)
        if match and (match.group("on") or re.search(r"\d", joined)):
            return n + 1
    return 0


def _header_block_at(lines: list[str], i: int) -> bool:
    if not _FROM.match(lines[i].strip()):
        return False
    return any(_SENT.match(line.strip()) for line in lines[i + 1 : i + 5])


def _quote_start(lines: list[str]) -> tuple[int, int] | None:
    """(first line of the quoted history, lines its own header spans) or None."""
    for i, line in enumerate(lines):
        if span := _attribution_at(lines, i):
            return i, span
        if _SEPARATOR.match(line.strip()):
            return i, 1
        if _header_block_at(lines, i):
            above = i - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            return (above, 1) if above >= 0 and _RULE.match(lines[above]) else (i, 1)
    rest = [n for n, line in enumerate(lines) if line.strip()]
    tail = len(lines)
    for n in reversed(rest):
        if not _QUOTED.match(lines[n]):
            break
        tail = n
    return (tail, 0) if tail < len(lines) else None


def _signature_start(lines: list[str]) -> tuple[int, int] | None:
    """(first line of the signature block, lines to drop before it) within the reply lines."""
    for i, line in enumerate(lines):
        if _SIG_DELIMITER.fullmatch(line.rstrip("\r")):
            return i + 1, 1
    for i, line in enumerate(lines):
        if _MOBILE.match(line.strip()):
            return i, 0
    content = [n for n, line in enumerate(lines) if line.strip()]
    for n in content:
        after = [lines[k] for k in content if k > n]
        if (
            _CLOSER.fullmatch(lines[n].strip())
            and 0 < len(after) <= MAX_SIGNATURE_LINES
            and all(len(line.strip()) <= MAX_SIGNATURE_LINE_CHARS for line in after)
        ):
            return n + 1, 0
    return None


def _clean(lines: list[str]) -> str | None:
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    return text if text.strip() else None


def split_reply(text: str | None) -> ReplyParts:
    """`text` -> ReplyParts(reply_text, signature); both None for no text. Never raises."""
    if not text:
        return ReplyParts(None, None)
    lines = text[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _quote_start(lines)
    reply = lines if start is None else lines[: start[0]]
    if start is not None and not any(line.strip() for line in reply):
        # An answer written between the quoted lines: the unquoted lines after the attribution.
        below = lines[start[0] + start[1] :]
        reply = [line for line in below if not _QUOTED.match(line)]
    signature: list[str] = []
    if (sig := _signature_start(reply)) is not None:
        at, dropped = sig
        reply, signature = reply[: at - dropped], reply[at:]
    return ReplyParts(_clean(reply), _clean(signature))
