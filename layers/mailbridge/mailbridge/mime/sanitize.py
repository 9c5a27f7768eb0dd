"""HTML bodies made safe to render in the CRM client, with nh3 (the Ammonia sanitizer).

Allow-list, not block-list: scripts, styles, frames, objects and forms are dropped with their
content, every on* handler goes (it is simply not allowed), and URLs must use a harmless scheme.
Remote images never load by themselves: their `src` moves to `data-remote-src` and the client
decides. Inline `data:image/...` and `cid:` images stay, because they do not reach the network.
CSS is limited to a property allow-list without `background*`/`url()` carriers.
"""

from __future__ import annotations

import re

import nh3

_TAGS = (nh3.ALLOWED_TAGS | {"font", "tfoot", "html", "body", "main", "section", "address", "big"}) - {
    # <map>/<area> carry hrefs on hot-spots that are easy to hide; mail rarely needs them.
    "map",
    "area",
}

# No id/class: without the <style> sheet they do nothing, and ids could clash with the client DOM.
_GENERIC_ATTRS = {"style", "title", "dir", "lang", "align", "valign", "width", "height"}
_TABLE_ATTRS = {"bgcolor", "border", "cellpadding", "cellspacing", "colspan", "rowspan", "nowrap"}

_ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = _GENERIC_ATTRS
_ATTRIBUTES["a"] = {"href", "name", "target"}
_ATTRIBUTES["img"] = {"src", "alt", "border", "hspace", "vspace"}
_ATTRIBUTES["font"] = {"color", "face", "size"}
for _tag in ("table", "tr", "td", "th", "tbody", "thead", "tfoot"):
    _ATTRIBUTES[_tag] = _ATTRIBUTES.get(_tag, set()) | _TABLE_ATTRS

_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}

_STYLE_PROPERTIES = {
    "color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "line-height",
    "letter-spacing",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "vertical-align",
    "white-space",
    "word-break",
    "word-wrap",
    "direction",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-collapse",
    "border-color",
    "border-style",
    "border-width",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-radius",
    "width",
    "max-width",
    "min-width",
    "height",
    "max-height",
    "min-height",
    "display",
    "list-style-type",
    "table-layout",
}

_REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_IMG_SRC = re.compile(r'(\s)src="', re.IGNORECASE)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if lowered.startswith("data:"):
        # data: is only harmless as an inline raster/vector image in <img>.
        return value if tag == "img" and attr == "src" and lowered.startswith("data:image/") else None
    if attr == "target":
        return "_blank"
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style", "iframe", "object", "embed", "form", "noscript", "template"},
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes=_URL_SCHEMES,
    filter_style_properties=_STYLE_PROPERTIES,
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def _park_remote_src(match: re.Match[str]) -> str:
    tag = match.group(0)
    src = re.search(r'\ssrc="([^"]*)"', tag)
    if src is None or not _REMOTE.match(src.group(1).replace("&amp;", "&")):
        return tag
    return _IMG_SRC.sub(r'\1data-remote-src="', tag, count=1)


def sanitize_html(html: str) -> str:
    cleaned = _CLEANER.clean(html)
    # nh3 serializes attributes canonically (double-quoted, `"` escaped), so rewriting its output
    # with a pattern is reliable in a way that rewriting the sender's HTML would not be.
    return _IMG_TAG.sub(_park_remote_src, cleaned)
