"""The audit log's dependencies, built once per container from the settings."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.audit.service import AuditDeps
from mailbridge.config import get_settings

if TYPE_CHECKING:
    from mailbridge.audit.archive import ArchiveDeps


@lru_cache(maxsize=1)
def audit_deps() -> AuditDeps:
    from mailbridge.store.audit import AuditStore

    return AuditDeps(store=AuditStore(get_settings().tables.audit))


@lru_cache(maxsize=1)
def archive_deps() -> ArchiveDeps:
    from datetime import UTC, datetime

    from mailbridge.audit.archive import ArchiveDeps
    from mailbridge.config import get_audit_archive_settings
    from mailbridge.store.audit_archive import AuditArchive

    settings = get_audit_archive_settings()
    return ArchiveDeps(
        sink=AuditArchive(settings.bucket),
        retention_days=settings.retention_days,
        now=lambda: datetime.now(UTC),
    )
