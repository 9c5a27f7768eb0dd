"""A faithful local double of Salesforce (OAuth 2.0 web server and device flows, REST sObjects,
describe, SOQL query with paging, composite collections, Bulk API 2.0, outbound messages, limits).

Built from the documented payloads and rules in ../shared/data/providers (notes.md and the
outbound messaging envelopes) and Salesforce's developer documentation; each module names its
sources and marks what rests on secondary reports or memory [R]. Start it in-process with
`SalesforceDouble` (a context manager) or as a process with `python -m local.salesforce --port N`.
"""

from local.salesforce.double import SalesforceDouble

__all__ = ["SalesforceDouble"]
