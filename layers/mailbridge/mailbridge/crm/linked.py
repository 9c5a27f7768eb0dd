"""The `email.linked` announcement: which contacts an email was just linked to.

Published once per email by the matcher (`match_email`) and by a manual contact link; the
CrmActivityRule routes it to the CRM activity logger (`mailbridge.crm.integrations.activity`).
`data = {email_id, contact_ids}`; `idempotency_key = email.linked:{email_id}:{digest of the
sorted contact ids}`, so a replayed match announces the same key and consumers can dedupe on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mailbridge.bus import DomainEvent

EMAIL_LINKED = "email.linked"


def email_linked(tenant_id: str, email_id: str, contact_ids: Iterable[str]) -> DomainEvent | None:
    """The event, or None when no contact is named."""
    contacts = sorted(set(contact_ids))
    if not contacts:
        return None
    digest = hashlib.sha256("\n".join(contacts).encode()).hexdigest()[:16]
    return DomainEvent(
        detail_type=EMAIL_LINKED,
        tenant_id=tenant_id,
        idempotency_key=f"{EMAIL_LINKED}:{email_id}:{digest}",
        data={"email_id": email_id, "contact_ids": contacts},
    )
