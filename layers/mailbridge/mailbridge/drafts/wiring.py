"""Builds the drafts dependencies once per cold start."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.config import get_settings
from mailbridge.drafts.service import DraftDeps
from mailbridge.queues import OutboxQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.drafts import DraftStore


@lru_cache(maxsize=1)
def draft_store() -> DraftStore:
    return DraftStore(get_settings().tables.emails)


@lru_cache(maxsize=1)
def draft_deps() -> DraftDeps:
    settings = get_settings()
    return DraftDeps(
        drafts=draft_store(),
        accounts=AccountStore(settings.tables.accounts),
        blobs=BlobStore(settings.mail_bucket),
        queue=OutboxQueue(settings.outbox_queue_url),
    )


def reset() -> None:
    """Forget the cached dependencies (tests, between stacks)."""
    draft_store.cache_clear()
    draft_deps.cache_clear()
