"""EnrichmentDouble: the People Data Labs Company Enrichment API (v5) on a loopback port.

Shapes from the PDL documentation ("Reference - Company Enrichment API", "Output Response -
Company Enrichment API", "Company Schema", "Authentication", "Errors & Status Codes"):

* Request: `GET /v5/company/enrich?website=<domain or URL>` (also `name`, `profile`, `ticker`;
  at least one is required), optional `min_likelihood` (1-10, default 2), key in the `X-Api-Key`
  header (or `api_key` in the query).
* Answer 200: the company profile, flat: `{"status": 200, "name", "display_name", "website",
  "size", "employee_count", "industry", "founded", "location": {"name", "street_address",
  "locality", "region", "postal_code", "country"}, "linkedin_url", "facebook_url",
  "twitter_url", ..., "likelihood"}` (null where PDL has no data).
* Errors: `{"status": <code>, "error": {"type": <type>, "message": <text>}}`: 400
  `invalid_request_error` (no input parameter), 401 `authentication_error` (missing or unknown
  key), 402 `payment_required` (no credits left), 404 `not_found` (no match, or a match below
  `min_likelihood`), 405 `method_not_allowed`, 429 `rate_limit_error` (with Retry-After), 500
  `api_error`.

Not PDL, choices of the double: the dataset is `companies` (by domain; `DEFAULT_COMPANIES` unless
given), each match's `likelihood` is stored with it; `fail(status, times, retry_after)` answers
the next calls with an error; `requests` lists what reached the "network" (path, query, headers).
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from local.double_server import Call, ControlError, HttpServer, Response, Route, Router, control_body, route

API_KEY = "local-enrichment-key"

ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Request must contain at least one of: name, profile, ticker, website"),
    401: ("authentication_error", "API key is missing or invalid"),
    402: ("payment_required", "You have hit your account maximum for company enrichment (all matches used)"),
    404: ("not_found", "No records were found matching your request"),
    405: ("method_not_allowed", "Request method is not allowed on the requested resource"),
    429: ("rate_limit_error", "An error occurred due to requests hitting the API too quick"),
    500: ("api_error", "The server encountered an unexpected condition"),
    503: ("api_error", "The service is temporarily unavailable"),
}  # fmt: skip


def _company(
    name: str,
    website: str,
    *,
    industry: str,
    size: str,
    employees: int,
    founded: int,
    street: str,
    locality: str,
    region: str,
    postal_code: str,
    country: str,
    handle: str,
    likelihood: int = 8,
) -> dict[str, Any]:
    return {
        "name": name.lower(),
        "display_name": name,
        "website": website,
        "size": size,
        "employee_count": employees,
        "industry": industry,
        "founded": founded,
        "location": {
            "name": f"{locality}, {region}, {country}".lower(),
            "street_address": street,
            "locality": locality.lower(),
            "region": region.lower(),
            "postal_code": postal_code,
            "country": country.lower(),
        },
        "linkedin_url": f"linkedin.com/company/{handle}",
        "facebook_url": f"facebook.com/{handle}",
        "twitter_url": f"twitter.com/{handle}",
        "likelihood": likelihood,
    }


DEFAULT_COMPANIES: dict[str, dict[str, Any]] = {
    "northwind.example": _company(
        "Northwind Traders",
        "northwind.example",
        industry="wholesale",
        size="201-500",
        employees=340,
        founded=1998,
        street="1 harbour way",
        locality="Seattle",
        region="Washington",
        postal_code="98101",
        country="United States",
        handle="northwind-traders",
    ),
    "contoso.example": _company(
        "Contoso",
        "contoso.example",
        industry="computer software",
        size="1001-5000",
        employees=2400,
        founded=2004,
        street="500 main street",
        locality="Redmond",
        region="Washington",
        postal_code="98052",
        country="United States",
        handle="contoso",
        likelihood=6,
    ),
}
"""The double's dataset, keyed by domain (what `website` names, without scheme, `www.` or path)."""


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: int | None = None


@dataclass
class Request:
    """One request as received (for tests: what reached the "network")."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class _State:
    requests: list[Request] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)


class ApiError(ControlError):
    """A PDL error answer."""

    def __init__(self, status: int, retry_after: int | None = None) -> None:
        kind, message = ERROR_TYPES[status]
        super().__init__(status, message)
        self.kind = kind
        self.retry_after = retry_after

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return Response.json(
            self.status,
            {"status": self.status, "error": {"type": self.kind, "message": self.message}},
            headers,
        )


def domain_of(website: str) -> str:
    """`https://www.Example.com/about` -> `example.com` (how the double matches `website`)."""
    text = website.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    return host.removeprefix("www.").rstrip(".")


class EnrichmentDouble:
    """The Company Enrichment API, its key check and its documented errors (module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = API_KEY,
        companies: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.lock = threading.RLock()
        self.state = _State()
        self.companies = copy.deepcopy(DEFAULT_COMPANIES if companies is None else companies)
        router = Router(self._routes(), self._not_found, self._not_allowed)
        self._server = HttpServer(router, host, port, name="enrichment-double")

    # ---------------------------------------------------------------- control (Python and HTTP)
    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def requests(self) -> list[Request]:
        with self.lock:
            return list(self.state.requests)

    def fail(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` enrich calls with error `status` (a key of `ERROR_TYPES`)."""
        if status not in ERROR_TYPES:
            raise ValueError(f"unknown error status {status}")
        with self.lock:
            self.state.faults.extend(Fault(status, retry_after) for _ in range(times))

    def reset(self) -> None:
        with self.lock:
            self.state = _State()

    def start(self) -> EnrichmentDouble:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> EnrichmentDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP
    def _routes(self) -> list[Route]:
        return [
            route("GET", "/v5/company/enrich", self._enrich),
            route("GET", "/__double__", self._control_state),
            route("POST", "/__double__/faults", self._control_faults),
            route("POST", "/__double__/reset", self._control_reset),
        ]

    @staticmethod
    def _not_found(_call: Call) -> Response:
        return ApiError(404).response()

    @staticmethod
    def _not_allowed(_call: Call) -> Response:
        return ApiError(405).response()

    def _enrich(self, call: Call) -> Response:
        with self.lock:
            self.state.requests.append(Request(call.path, dict(call.query), dict(call.headers)))
            fault = self.state.faults.popleft() if self.state.faults else None
        key = call.headers.get("x-api-key") or call.one("api_key")
        if key != self.api_key:
            raise ApiError(401)
        if fault is not None:
            raise ApiError(fault.status, fault.retry_after)
        website = call.one("website")
        if not (website or call.one("name") or call.one("profile") or call.one("ticker")):
            raise ApiError(400)
        try:
            minimum = int(call.one("min_likelihood") or 2)
        except ValueError:
            raise ApiError(400) from None
        found = self.companies.get(domain_of(website)) if website else None
        if found is None or int(found.get("likelihood", 1)) < minimum:
            raise ApiError(404)
        return Response.json(200, {"status": 200, **found})

    def _control_state(self, _call: Call) -> Response:
        with self.lock:
            return Response.json(
                200,
                {
                    "url": self.base_url,
                    "api_key": self.api_key,
                    "requests": [
                        {"path": r.path, "website": r.query.get("website")} for r in self.state.requests
                    ],
                    "pending_faults": [f.status for f in self.state.faults],
                },
            )

    def _control_faults(self, call: Call) -> Response:
        body = control_body(call)
        try:
            retry_after = body.get("retry_after")
            self.fail(
                int(body.get("status", 0)),
                int(body.get("times", 1)),
                None if retry_after is None else int(retry_after),
            )
        except (TypeError, ValueError) as error:
            raise ControlError(400, str(error)) from None
        return Response.empty()

    def _control_reset(self, _call: Call) -> Response:
        self.reset()
        return Response.empty()
