"""Field types for the MIME values a client names: an attachment's media type and Content-ID.

The same rule at the API boundary (`mailbridge.outbox.models`) and in compose
(`mailbridge.compose.models.OutgoingAttachment`), so a request the API accepted never fails
later when the message is built. Refusals are pydantic errors whose `type` says which rule
(`invalid_content_type`, `invalid_content_id`); the value is never echoed back.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# RFC 6838 section 4.2 restricted-name, for type and subtype: a subset of the RFC 2045
# section 5.1 token (no tspecials, no wildcard), at most 127 characters each.
_RESTRICTED_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"({_RESTRICTED_NAME})/({_RESTRICTED_NAME})")
# RFC 5322 section 3.6.4 msg-id characters (atext, "." and "@"), which RFC 2392 makes the
# Content-ID; optionally in its angle brackets.
_ID_CHARS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,250}"
_CONTENT_ID = re.compile(rf"<({_ID_CHARS})>|({_ID_CHARS})")


def _media_type(value: str) -> str:
    lowered = value.lower()
    match = _MEDIA_TYPE.fullmatch(lowered)
    if match is None:
        raise PydanticCustomError(
            "invalid_content_type", "content_type must be a media type 'type/subtype' (RFC 2045 section 5.1)"
        )
    maintype = match.group(1)
    if maintype == "multipart" or (maintype == "message" and lowered != "message/rfc822"):
        # Compose builds the multiparts itself; message/partial and message/external-body have
        # semantics of their own (RFC 2046 section 5.2).
        raise PydanticCustomError(
            "invalid_content_type",
            "an attachment cannot be multipart/* or message/* other than message/rfc822",
        )
    return lowered


def _content_id(value: str) -> str:
    match = _CONTENT_ID.fullmatch(value)
    if match is None:
        raise PydanticCustomError(
            "invalid_content_id",
            "content_id must be 1-250 characters of an RFC 5322 msg-id (letters, digits, "
            "!#$%&'*+/=?^_`{|}~.@-), optionally in <>: no spaces, quotes or control characters",
        )
    return match.group(1) or match.group(2)


# Not stripped: white space around either is refused like white space inside.
MediaType = Annotated[str, AfterValidator(_media_type)]
"""`type/subtype`, lower-cased; not multipart/*, not message/* other than message/rfc822."""

ContentId = Annotated[str, AfterValidator(_content_id)]
"""A Content-ID without its angle brackets (accepted with or without them)."""
