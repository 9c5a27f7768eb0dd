"""The enrichment's dependencies, built once per cold start (api function)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbridge.ai.enrich import EnrichDeps


@lru_cache(maxsize=1)
def enrich_deps() -> EnrichDeps:
    from mailbridge.ai.enrich import EnrichDeps
    from mailbridge.api import deps
    from mailbridge.config import get_settings
    from mailbridge.providers.enrichment import CompanyEnrichment
    from mailbridge.store.enrichment import EnrichmentCacheStore, EnrichmentSettingStore

    settings = get_settings()
    local_mode = settings.allow_private_mail_hosts

    def provider(base_url: str, api_key: str) -> CompanyEnrichment:
        return CompanyEnrichment(base_url, api_key, local_mode=local_mode)

    return EnrichDeps(
        settings=EnrichmentSettingStore(settings.tables.settings),
        cache=EnrichmentCacheStore(settings.tables.accounts),
        crm=deps.crm_store(),
        emails=deps.email_store(),
        blobs=deps.blob_store(),
        links=deps.link_store(),
        key_id=settings.data_key_id,
        provider=provider,
        local_mode=local_mode,
        publisher=deps.publisher(),
    )


def reset() -> None:
    """Forget the cached dependencies (tests: a new cold start)."""
    enrich_deps.cache_clear()
