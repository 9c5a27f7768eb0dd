"""Typed Gmail errors (Gmail "Resolve errors" guide, developers.google.com/workspace/gmail/api/
guides/handle-errors), beside the shared ones in mailbridge.errors:

- 401 (after one token refresh) -> ProviderAuthError(`reauth_required`)
- 403 `insufficientPermissions` -> ProviderAuthError(`insufficient_scope`)
- 403 `userRateLimitExceeded` / `rateLimitExceeded`, 429 -> ProviderRateLimited(retry_after)
- 404 on `history.list` -> HistoryExpired (the startHistoryId is too old: full sync)
- 404 on a message -> MessageNotFound (deleted since it was listed)
- 404 on a draft -> DraftNotFound (deleted or sent in Gmail)
- other 4xx -> ProviderError(`gmail_request_refused`, not retryable)
- 5xx, timeouts, refused connections -> retryable ProviderError / ProviderUnreachable
"""

from __future__ import annotations

from mailbridge.errors import ProviderError


class HistoryExpired(ProviderError):
    """`history.list` answered 404: the saved historyId is no longer available (notes.md, Gmail)."""

    code = "history_expired"
    retryable = False


class MessageNotFound(ProviderError):
    """The message is gone (deleted for good since it was listed)."""

    code = "message_not_found"
    retryable = False


class DraftNotFound(ProviderError):
    """The draft is gone (deleted or sent in Gmail since its id was stored)."""

    code = "draft_not_found"
    retryable = False
