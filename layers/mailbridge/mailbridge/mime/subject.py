"""Base subject for threading (RFC 5256 section 2.1), extended with localized reply/forward prefixes.

The result keeps the sender's case; compare with `casefold()`. Beyond the RFC's "re"/"fw"/"fwd",
we strip the reply/forward prefixes Outlook, Thunderbird and others write in other languages
(AW, SV, WG, 회신, ...), because those are what real threads in a CRM contain.

`REPLY_PREFIXES` and `FORWARD_PREFIXES` are the one table of those words: threading strips both
(`base_subject`), compose (`mailbridge.compose.subject`) tells them apart ("AW: x" answered is
"Re: x", "WG: x" answered is "Re: WG: x"). A subject is a reply or forward only when it carries
one of them explicitly (RFC 5256 section 2.1 step 6: a removed subj-refwd, "(fwd)" trailer or
"[fwd: ...]" wrapper); a list tag alone ("[team] x") does not make it one.
"""

from __future__ import annotations

import re

# Words, matched case-insensitively and followed by an optional counter and an ASCII or
# full-width colon ("AW:", "Re[2]:"). They are the prefixes the localized Outlook and Thunderbird
# builds write. Where a word means "reply" in one language and "forward" in another (VS: Finnish
# and Estonian reply, Norwegian and Danish forward), it is in both tuples: threading strips it
# either way, compose treats it as already-that-kind.
REPLY_PREFIXES: tuple[str, ...] = (
    "re",  # English, French, Spanish, Catalan, Romanian, ... (RFC 5322 section 3.6.5)
    "aw",  # German: Antwort
    "antwort",  # German, older clients
    "antw",  # Dutch: Antwoord
    "sv",  # Swedish, Norwegian, Danish, Icelandic: Svar
    "vs",  # Finnish: Vastaus; Estonian: Vastus
    "r",  # Italian: Risposta
    "rif",  # Italian: Riferimento
    "res",  # Portuguese: Resposta
    "odp",  # Polish: Odpowiedź; Czech: Odpověď
    "ynt",  # Turkish: Yanit (dotless i)
    "yml",  # kept from the earlier table
    "atb",  # Latvian: Atbilde
    "ats",  # Lithuanian: Atsakymas
    "vá",  # Hungarian: Válasz
    "απ",  # Greek: Απάντηση
    "σχετ",  # Greek: Σχετικά (Outlook)
    "השב",  # Hebrew: reply
    "回复",  # Chinese (simplified): reply
    "答复",  # Chinese (simplified): Outlook's reply
    "回覆",  # Chinese (traditional): reply
    "返信",  # Japanese: reply
    "회신",  # Korean: Outlook's reply
    "답장",  # Korean: reply (other clients)
    "отв",  # Russian: Ответ (Outlook writes "Отв")
    "ответ",  # Russian
    "від",  # Ukrainian: Відповідь
    "відп",  # Ukrainian: Відповідь (Outlook)
)
FORWARD_PREFIXES: tuple[str, ...] = (
    "fwd",  # English (RFC 5256 section 2.1)
    "fw",  # English, Outlook
    "wg",  # German: Weitergeleitet
    "doorst",  # Dutch: Doorsturen
    "vb",  # Swedish: Vidarebefordrat
    "vl",  # Finnish: Välitetty
    "vs",  # Norwegian, Danish: Videresendt
    "fs",  # Icelandic: Framsent
    "tr",  # French: Transféré
    "rv",  # Spanish: Reenviado
    "i",  # Italian: Inoltrato
    "enc",  # Portuguese: Encaminhado
    "pd",  # Polish: Przekazanie dalej
    "př",  # Czech: Přeposláno
    "ilt",  # Turkish: İlet (matches "İLT" too: case-insensitive)
    "tov",  # Hungarian: Továbbítás
    "pārs",  # Latvian: Pārsūtīts
    "pers",  # Lithuanian: Persiųsta
    "edasi",  # Estonian: Edasi saadetud
    "πρθ",  # Greek: Προώθηση
    "הועבר",  # Hebrew: forwarded
    "转发",  # Chinese (simplified): forward
    "轉寄",  # Chinese (traditional): forward
    "転送",  # Japanese: forward
    "전달",  # Korean: Outlook's forward
    "пересл",  # Russian, Ukrainian: Переслано
)


def prefix_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One leading prefix: a word, an optional counter or blob ("Re[2]:", "Re(2):", "Re^2:",
    RFC 5256 subj-blob), an ASCII or full-width colon, and the whitespace after it."""
    alternatives = "|".join(re.escape(word) for word in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"(?:{alternatives})\s*(?:\[[^\[\]]*\]|\(\d+\)|\^\d+)?\s*[:\uff1a]\s*", re.IGNORECASE)


_REFWD = prefix_pattern(REPLY_PREFIXES + FORWARD_PREFIXES)
_BLOB = re.compile(r"\[[^\[\]]*\]\s*")
_FWD_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_FWD_WRAPPER = re.compile(r"\[fwd:\s*(.*)\]", re.IGNORECASE | re.DOTALL)
_WS = re.compile(r"\s+")


def _extract(subject: str) -> tuple[str, bool]:
    """RFC 5256 section 2.1 base subject, and whether a reply/forward marker was removed."""
    text = _WS.sub(" ", subject).strip()
    marked = False
    while True:
        previous = text
        # (2) trailing "(fwd)"
        while _FWD_TRAILER.search(text):
            text = _FWD_TRAILER.sub("", text)
            marked = True
        # (3)-(5) leading prefixes and blobs, until nothing changes; a blob is only removed when
        # something is left after it (RFC 5256: "[list] " alone is the whole subject).
        while True:
            inner = text
            if prefix := _REFWD.match(text):
                text = text[prefix.end() :]
                marked = True
            if (blob := _BLOB.match(text)) and text[blob.end() :]:
                text = text[blob.end() :]
            if text == inner:
                break
        # (6) "[fwd: ...]" wrapper
        if wrapped := _FWD_WRAPPER.fullmatch(text):
            text = wrapped.group(1).strip()
            marked = True
        if text == previous:
            return text.strip(), marked


def base_subject(subject: str | None) -> str:
    """`Re: AW: [list] x (fwd)` -> `x`; "" for None."""
    return _extract(subject)[0] if subject else ""


def is_reply_or_forward(subject: str | None) -> bool:
    """True when the subject carries an explicit reply/forward marker from the table above."""
    return _extract(subject)[1] if subject else False
