"""A local double of a company enrichment provider in the shape of the People Data Labs Company
Enrichment API (`GET /v5/company/enrich`), for the tests and `make run`.

Start it in-process with `EnrichmentDouble` (a context manager) and point a tenant's enrichment
setting at it (`PUT /ai/enrichment` with `base_url` = `double.base_url`, `api_key` = `double.api_key`).
"""

from local.enrichment.double import DEFAULT_COMPANIES, EnrichmentDouble

__all__ = ["DEFAULT_COMPANIES", "EnrichmentDouble"]
