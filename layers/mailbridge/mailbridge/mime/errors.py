"""The one error `normalize` raises: the caller quarantines the raw bytes with `code` as the reason."""

from __future__ import annotations

from typing import Final

from mailbridge.errors import Invalid

EMPTY: Final = "empty"
NOT_RFC822: Final = "not_rfc822"
TOO_LARGE: Final = "too_large"
TOO_COMPLEX: Final = "too_complex"
UNPARSEABLE: Final = "unparseable"


class MimeError(Invalid):
    """Raw bytes that cannot become a ParsedMessage; `code` is one of the constants above."""

    code = UNPARSEABLE
