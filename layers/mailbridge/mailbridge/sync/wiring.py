"""Builds the sync service's dependencies once per cold start from the settings."""

from __future__ import annotations

import time
from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.sync.engine import Budget, SyncDeps
from mailbridge.sync.service import SyncServiceDeps

# How one run spends the Lambda's time (template.yaml, SyncFunction: Timeout; sizes measured by
# benchmarks/bench_sync.py, see the comment there):
#   ... no batch starts ... | the IMAP session is cut off | a fetched batch is stored | hand-off
#   <-- FETCH_SECONDS -----> <------ STORE_SECONDS ------> <---- HANDOFF_SECONDS ---->| timeout
# A batch fetched just before the cut-off still has STORE_SECONDS to be normalized and stored,
# and saving the folder state and queueing the continuation have HANDOFF_SECONDS after that.
HANDOFF_SECONDS = 10
STORE_SECONDS = 30
FETCH_SECONDS = 20
MAX_MESSAGES_PER_RUN = 5000
BATCH_SIZE = 100
BATCH_BYTES = 16_000_000
# PutEvents calls a batch's announcement sends at a time (a batch of 100 emails is 10 calls of
# 10): two rounds of waiting instead of ten. Far below EventBridge's PutEvents quota per region.
PUBLISH_WORKERS = 5


@lru_cache(maxsize=1)
def service_deps() -> SyncServiceDeps:
    settings = get_settings()
    return SyncServiceDeps(
        sync=SyncDeps(
            accounts=AccountStore(settings.tables.accounts),
            emails=EmailStore(settings.tables.emails),
            blobs=BlobStore(settings.mail_bucket),
            publisher=EventPublisher(settings.event_bus_name, workers=PUBLISH_WORKERS),
        ),
        queue=SyncQueue(settings.sync_queue_url),
        allow_private_hosts=settings.allow_private_mail_hosts,
    )


def budget_for(remaining_ms: int) -> Budget:
    """The budget of a run that has `remaining_ms` of the Lambda's time left. A run too short for
    the margins above (tests, the local runner) keeps their shape in proportion."""
    now = time.monotonic()
    remaining = remaining_ms / 1000
    reserve = HANDOFF_SECONDS + STORE_SECONDS
    if remaining >= 2 * (reserve + FETCH_SECONDS):
        session_deadline = now + remaining - reserve
        deadline = session_deadline - FETCH_SECONDS
    else:
        session_deadline = now + 0.8 * remaining
        deadline = now + 0.5 * remaining
    return Budget(
        max_messages=MAX_MESSAGES_PER_RUN,
        deadline=deadline,
        batch_size=BATCH_SIZE,
        batch_bytes=BATCH_BYTES,
        session_deadline=session_deadline,
    )
