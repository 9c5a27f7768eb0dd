"""Typed Graph errors (learn.microsoft.com/graph/errors, delta-query-overview "Synchronization
reset", throttling), beside the shared ones in mailbridge.errors:

- 401 (after one token refresh) -> ProviderAuthError(`reauth_required`)
- 403 -> ProviderAuthError(`insufficient_scope`) (the consent lacks Mail.ReadWrite / Mail.Send)
- 410 Gone, `syncStateNotFound`, `resyncRequired` on a delta link -> DeltaReset
- 404 `ErrorItemNotFound` on a message -> MessageNotFound
- 429 (TooManyRequests with Retry-After, ApplicationThrottled without) -> ProviderRateLimited
- other 4xx -> ProviderError(`graph_request_refused`, not retryable)
- 5xx, timeouts, refused connections -> retryable ProviderError / ProviderUnreachable
"""

from __future__ import annotations

from mailbridge.errors import ProviderError


class DeltaReset(ProviderError):
    """The saved delta or next link is no longer valid: restart the folder with a full delta
    (notes.md, Graph: "Handle both this and 410")."""

    code = "delta_reset"
    retryable = False


class MessageNotFound(ProviderError):
    """The message is gone (deleted or moved out of the mailbox since it was listed)."""

    code = "message_not_found"
    retryable = False
