"""Bytes and strings from untrusted mail turned into clean `str`, whatever the declared charset says."""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_TABLE = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_WS = re.compile(r"\s+")
_WESTERN = {"cp1252", "latin_1", "iso8859_15"}
_TIE = 0.1

# Labels mailers send that Python does not know, or knows as a narrower charset than the one the
# sender's software really used (the WHATWG Encoding Standard's label table makes the same
# choices: ks_c_5601-1987 and gb2312 are labels for Windows code page 949 and GB18030, whose
# repertoires are supersets). "" means "no charset at all": detect.
_ALIASES = {
    "unknown-8bit": "",
    "x-unknown": "",
    "unknown": "",
    "x-user-defined": "",
    "default": "",
    "none": "",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "windows-949": "cp949",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "chinese": "gb18030",
    "csgb2312": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-e": "iso-8859-6",
    "logical": "iso-8859-8",
    "visual": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-ukrainian": "mac_cyrillic",
    "x-mac-greek": "mac_greek",
    "x-mac-turkish": "mac_turkish",
    "x-mac-ce": "mac_latin2",
    "x-mac-centraleurroman": "mac_latin2",
    "x-mac-icelandic": "mac_iceland",
    "windows-31j": "cp932",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "ms_kanji": "shift_jis",
    "x-euc-jp": "euc_jp",
    "x-euc": "euc_jp",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "x-cp20936": "gb2312",
    "unicode-1-1-utf-8": "utf-8",
    "unicode-2-0-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
}
# Families written with a prefix Python does not take: windows-874, x-cp1251, win-1251, cp-850,
# ibm-850, ms-936 and the like are all the Windows/IBM code page of that number.
_CODE_PAGE = re.compile(r"(?:x-)?(?:windows|win|cp|ibm|ms)[-_]?(\d{3,5})")


@lru_cache(maxsize=512)
def known_codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label (RFC 2045 `charset`, RFC 2047 encoded words,
    RFC 2231 parameters and TNEF all use this one lookup), or None when there is no usable one.

    Tried in order: the alias table above, the label as Python knows it, the label without an
    `x-` prefix, and the code page number of windows-/cp-/ibm-/ms- variants. An RFC 2231
    language suffix (`utf-8*en`, RFC 2231 section 5) is ignored. Python codecs that are not text
    encodings (base64, zlib, rot13 ...: `bytes.decode` refuses them) are no charset.
    """
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower().split("*", 1)[0]
    for candidate in _candidates(name):
        if not candidate:
            return None
        try:
            info = codecs.lookup(candidate)
        except LookupError:
            continue
        # The flag bytes.decode itself checks (CodecInfo._is_text_encoding, Python 3.4+).
        return info.name if getattr(info, "_is_text_encoding", True) else None
    return None


def _candidates(name: str) -> list[str]:
    if name in _ALIASES:
        return [_ALIASES[name]]
    out = [name]
    if name.startswith("x-"):
        out.append(_ALIASES.get(name[2:], name[2:]))
    page = _CODE_PAGE.fullmatch(name)
    if page:
        out.append(f"cp{int(page.group(1))}")
    return out


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Decode `data`; returns the text and whether we had to ignore the declared charset.

    Order: the declared charset (strictly; for 7-bit data in a 7-bit charset, with replacement
    characters), UTF-8 (the most common mislabel target), the charset charset-normalizer detects,
    then cp1252 with replacement, which never fails.
    """
    codec = known_codec(declared)
    if codec is not None:
        try:
            return data.decode(codec), False
        except (UnicodeDecodeError, ValueError):
            if data.isascii() and (codec.startswith("iso2022") or codec in ("utf-7", "hz")):
                # 7-bit stateful charsets (ISO-2022-*, UTF-7, HZ): reading the octets as ASCII
                # would show escape sequences; vendor extensions the codec lacks (NEC row 13 in
                # ISO-2022-JP) are better a replacement character each.
                return data.decode(codec, errors="replace"), True
    if data.isascii():
        return data.decode("ascii"), codec is None and declared is not None
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    detected = _detect(data)
    if detected is not None:
        return detected, True
    return data.decode("cp1252", errors="replace"), True


def _detect(data: bytes) -> str | None:
    from charset_normalizer import from_bytes  # only for undeclared or mislabeled 8-bit text

    results = from_bytes(data)
    best = results.best()
    if best is None:
        return None
    # On short Western text the detector cannot tell cp1252 from cp1257/cp1250 (same chaos within
    # noise); cp1252 is by far the most common mislabel in real mail, so it wins such ties.
    western = next((m for m in results if _WESTERN & set(m.could_be_from_charset)), None)
    chosen = western if western is not None and western.chaos <= best.chaos + _TIE else best
    try:
        return str(chosen)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def unsurrogate(value: str) -> str:
    """Undo the surrogate escapes that stand for raw 8-bit header bytes: UTF-8 (RFC 6532) when
    the bytes are UTF-8, a cut-off last character included (senders truncate long names at a byte
    count); otherwise the charset is detected."""
    if value.isascii() or not _SURROGATES.search(value):
        return value
    try:
        raw = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(raw) - 3:
            return raw.decode("utf-8", errors="replace")
    text, _ = decode_bytes(raw, None)
    return _SURROGATES.sub("\ufffd", text)


def clean_header_text(value: str) -> str:
    """Single-line, printable, JSON-safe header text."""
    if value.isprintable() and "  " not in value:
        # Nothing to remove or collapse: printable text has no control characters, surrogates
        # or whitespace but the ASCII space (str.isprintable).
        return value.strip()
    value = unsurrogate(value)
    value = _CONTROL.sub("", value)
    return _WS.sub(" ", value).strip()


def clean_body_text(value: str) -> str:
    """Body text with LF line ends, without control characters (TAB and LF stay) or lone
    surrogates (UTF-7 can encode one)."""
    # ASCII text (a flag on the string, no scan) has no surrogates, and str.translate is much
    # faster than a pattern pass on it; on other text it is much slower.
    if value.isascii():
        return value.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL_TABLE)
    value = unsurrogate(value).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", value)


def collapse_ws(value: str) -> str:
    return _WS.sub(" ", value).strip()
