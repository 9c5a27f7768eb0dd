"""The write-protocol errors every provider calendar adapter raises (Google Calendar, Graph)."""

from __future__ import annotations

from mailbridge.errors import ProviderError


class EtagMismatch(ProviderError):
    """412 on a write with `If-Match`: the event changed at the provider since it was read."""

    code = "etag_mismatch"
    retryable = False


class ProviderEventGone(ProviderError):
    """404 or 410 on a write: the event no longer exists at the provider."""

    code = "provider_event_gone"
    retryable = False
