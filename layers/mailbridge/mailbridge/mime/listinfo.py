"""Headers that categorization uses: list membership (RFC 2369/2919/8058), automated-mail markers."""

from __future__ import annotations

import re
from email.message import Message

from mailbridge.mime.automated import AUTOMATION_HEADERS
from mailbridge.mime.headers import header_names, header_text
from mailbridge.models.email import ListInfo

_BRACKETED = re.compile(r"<([^<>]+)>")

# Headers copied verbatim (cleaned, truncated) into `headers_of_interest`: these, then the
# automated-mail markers (mime.automated) that have no field of their own.
_CATEGORIZATION_HEADERS = (
    "X-Auto-Response-Suppress",
    "X-Autoreply",
    "X-Autorespond",
    "X-Auto-Reply",
    "X-Mailer",
    "User-Agent",
    "Importance",
    "X-Priority",
    "Priority",
    "Feedback-ID",
    "X-MS-Exchange-Generated-Message-Source",
    "X-Spam-Flag",
    "X-Spam-Status",
    "X-Forwarded-For",
    "X-Original-To",
    "Delivered-To",
    "Thread-Topic",
    "Thread-Index",
)
INTERESTING_HEADERS = tuple(
    dict.fromkeys(
        (
            *_CATEGORIZATION_HEADERS,
            *(h for h in AUTOMATION_HEADERS if h.lower() not in {"auto-submitted", "precedence"}),
        )
    )
)
_MAX_HEADER_VALUE = 500


def _uris(value: str | None) -> list[str]:
    if not value:
        return []
    return [uri.strip().replace(" ", "") for uri in _BRACKETED.findall(value) if uri.strip()]


_LIST_HEADERS = frozenset(
    {"list-id", "list-unsubscribe", "list-unsubscribe-post", "list-post", "list-archive", "list-help"}
)
_INTERESTING = tuple((name, name.lower()) for name in INTERESTING_HEADERS)


def list_info(msg: Message, defects: list[str]) -> ListInfo | None:
    if not _LIST_HEADERS & header_names(msg):
        return None
    list_id = header_text(msg, "List-Id", defects)
    unsubscribe = header_text(msg, "List-Unsubscribe", defects)
    unsubscribe_post = header_text(msg, "List-Unsubscribe-Post", defects)
    post = header_text(msg, "List-Post", defects)
    archive = header_text(msg, "List-Archive", defects)
    help_ = header_text(msg, "List-Help", defects)
    if not any((list_id, unsubscribe, unsubscribe_post, post, archive, help_)):
        return None
    ids = _BRACKETED.findall(list_id) if list_id else []
    return ListInfo(
        # RFC 2919: the identifier is the bracketed part; the phrase before it is a description.
        list_id=(ids[0].strip() if ids else list_id) or None,
        list_unsubscribe=_uris(unsubscribe),
        list_unsubscribe_post=unsubscribe_post,
        list_post=(_uris(post) or [post])[0] if post else None,
        list_archive=(_uris(archive) or [archive])[0] if archive else None,
        list_help=(_uris(help_) or [help_])[0] if help_ else None,
    )


def interesting_headers(msg: Message, defects: list[str]) -> dict[str, str]:
    present = header_names(msg)
    found: dict[str, str] = {}
    for name, lower in _INTERESTING:
        if lower not in present:
            continue
        value = header_text(msg, name, defects)
        if value:
            found[lower] = value[:_MAX_HEADER_VALUE]
    return found
