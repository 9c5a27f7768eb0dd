"""Rewrite an HTML body for tracking: every http(s) link to `/t/c/{token}`, and a 1x1 pixel.

Only the `href` of `<a>` start tags whose value (after HTML character references are decoded,
HTML Living Standard section 13.1.2.3) starts with `http:` or `https:` (any case) is replaced;
`mailto:`, `tel:`, `cid:`, fragments and relative links stay as they are, and so does every
other byte of the document. The pixel (`<img ... width="1" height="1" alt="">`) goes just before
the last `</body>`, or at the end when there is none.

Written with a tag-level regular expression rather than an HTML parser because the rewrite must
leave every other byte unchanged: the stdlib's `html.parser` reports no attribute offsets, and
the parsers that do (lxml, html5lib) re-serialize the whole document (and are not in the layer).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mailbridge.tracking.tokens import MAX_LINKS

# A start tag `<a ...>` whose quoted attribute values may contain `>`.
_A_TAG = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)
_WEB = re.compile(r"https?:", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass
class Rewritten:
    html: str
    links: list[str] = field(default_factory=list)  # original URLs, by link index


def pixel_tag(url: str) -> str:
    return f'<img src="{html.escape(url)}" width="1" height="1" alt="" style="border:0;width:1px;height:1px">'


def rewrite_links(body: str, tracked_url: Callable[[int], str]) -> Rewritten:
    """Replace each http(s) `href` by `tracked_url(index)`; the originals, in order, in `links`.
    After MAX_LINKS links the rest are left untracked."""
    links: list[str] = []

    def tag(match: re.Match[str]) -> str:
        text = match.group(0)
        href = _HREF.search(text)
        if href is None or len(links) >= MAX_LINKS:
            return text
        value = href.group(2)
        url = html.unescape(value[1:-1] if value[:1] in "\"'" else value).strip()
        if not _WEB.match(url):
            return text
        replacement = f'{href.group(1)}"{html.escape(tracked_url(len(links)))}"'
        links.append(url)
        return text[: href.start()] + replacement + text[href.end() :]

    return Rewritten(_A_TAG.sub(tag, body), links)


def add_pixel(body: str, url: str) -> str:
    ends = list(_BODY_END.finditer(body))
    if not ends:
        return body + pixel_tag(url)
    at = ends[-1].start()
    return body[:at] + pixel_tag(url) + body[at:]
