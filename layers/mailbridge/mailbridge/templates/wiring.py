"""Builds the templates' dependencies once per cold start."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.config import get_settings
from mailbridge.templates.service import TemplateDeps


@lru_cache(maxsize=1)
def template_deps() -> TemplateDeps:
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.templates import TemplateStore
    from mailbridge.tracking.wiring import tracking_store

    tables = get_settings().tables
    return TemplateDeps(
        store=TemplateStore(tables.automations),
        crm=CrmStore(tables.crm, timeline_table=tables.links),
        emails=EmailStore(tables.emails),
        tracking=tracking_store(),
    )
