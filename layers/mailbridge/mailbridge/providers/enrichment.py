"""External company enrichment: one HTTP adapter in the shape of the People Data Labs Company
Enrichment API (v5), called through the SSRF guard of `mailbridge.providers.http`.

Request (PDL "Reference - Company Enrichment API", "Authentication"):
`GET {base_url}/v5/company/enrich?website={domain}&min_likelihood={n}` with the key in the
`X-Api-Key` header. Answers:
- 200: the company profile, flat (not under `data`): `name`, `display_name`, `website`, `size`
  (a range such as `51-200`), `employee_count`, `industry`, `founded`, `location` (`name`,
  `street_address`, `locality`, `region`, `postal_code`, `country`), `linkedin_url`,
  `facebook_url`, `twitter_url`, and `likelihood` (1-10, how sure the match is; PDL "Output
  Response - Company Enrichment API"). A field PDL has no data for is null.
- 404: no company matched (`{"status": 404, "error": {"type": "not_found", "message"}}`).
- 400/401/402/403/405: a bad request, a missing or invalid key, no credits left (PDL "Errors &
  Status Codes"): not retried.
- 429 and 5xx: retried with backoff by `providers.http.request` (Retry-After honoured).

The guard: https only (http to loopback in local mode), every resolved address public, the
connection made to the checked address (DNS rebinding), per-phase timeouts and one deadline.
Errors (typed, never the URL or the key in the message): `EnrichmentRejected`
(`enrichment_rejected`, `details["status"]`), `invalid_answer` (a 200 that is not a profile), and
what `providers.http.request` raises (`host_not_allowed`, `insecure_url`, `upstream_timeout`,
`upstream_unreachable`, `upstream_rate_limited`, `upstream_error` ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import ConfigDict, Field, ValidationError

from mailbridge.errors import ProviderError
from mailbridge.models.base import Model

ENRICH_PATH = "/v5/company/enrich"
MIN_LIKELIHOOD = 2
"""PDL's `min_likelihood`: matches below it answer 404 (1 is the loosest, 10 the strictest)."""
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
TOTAL_TIMEOUT = 12.0
"""Seconds for the connect, each read, and the whole call with its retries' own exchanges."""
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 5.0
"""A Retry-After longer than this is not waited for inside an API request (`upstream_rate_limited`)."""


class EnrichmentRejected(ProviderError):
    """The provider refused the request for good (400, 401, 402, 403, 405...): a wrong key, no
    credits left; `details["status"]` is its status."""

    code = "enrichment_rejected"
    retryable = False


class InvalidAnswer(ProviderError):
    code = "invalid_answer"
    retryable = False


class ProfileLocation(Model):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    street_address: str | None = None
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


class CompanyProfile(Model):
    """The fields of a PDL company profile the enrichment reads (others are ignored)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    display_name: str | None = None
    website: str | None = None
    size: str | None = None
    employee_count: int | None = None
    industry: str | None = None
    founded: int | None = None
    location: ProfileLocation | None = None
    linkedin_url: str | None = None
    facebook_url: str | None = None
    twitter_url: str | None = None
    likelihood: int = Field(default=1, ge=1, le=10)


@dataclass(frozen=True)
class EnrichmentCall:
    """What one lookup did: `profile` (None: no company matched) and the HTTP attempts it took."""

    profile: CompanyProfile | None
    attempts: int


HttpRequest = Callable[..., Any]
"""`mailbridge.providers.http.request` (injectable)."""


@dataclass
class CompanyEnrichment:
    """The provider at `base_url` (no trailing slash needed) with `api_key`.

    `local_mode`: http to a loopback base URL is allowed (the local runner's double); every
    other rule of the guard still holds."""

    base_url: str
    api_key: str
    local_mode: bool = False
    http_request: HttpRequest | None = None
    sleep: Callable[[float], None] | None = None

    def find(self, domain: str) -> EnrichmentCall:
        """The company of `domain` (a host name, lower-case), or `profile=None` on 404."""
        from mailbridge.providers.http import HttpPolicy, request

        policy = HttpPolicy(
            local_mode=self.local_mode,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            total_timeout=TOTAL_TIMEOUT,
            max_redirects=0,
            max_attempts=MAX_ATTEMPTS,
            max_retry_after=MAX_RETRY_AFTER,
            max_response_bytes=200_000,
        )
        url = (
            f"{self.base_url.rstrip('/')}{ENRICH_PATH}"
            f"?website={quote(domain, safe='')}&min_likelihood={MIN_LIKELIHOOD}"
        )
        send = self.http_request or request
        extra: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        response = send(
            "GET",
            url,
            policy=policy,
            headers={"X-Api-Key": self.api_key, "Accept": "application/json"},
            **extra,
        )
        if response.status == 404:
            return EnrichmentCall(None, response.attempts)
        if response.status != 200:
            raise EnrichmentRejected(
                "the enrichment provider refused the request", details={"status": response.status}
            )
        try:
            profile = CompanyProfile.model_validate(json.loads(response.body))
        except (ValueError, ValidationError):
            raise InvalidAnswer("the enrichment provider's answer is not a company profile") from None
        return EnrichmentCall(profile, response.attempts)
