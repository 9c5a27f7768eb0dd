"""A faithful local double of HubSpot (OAuth, CRM v3 objects, search and batch, properties,
associations v4, lists v3, rate limits with their headers, webhooks signed with v3 signatures).

Built from the documented payloads and rules in ../shared/data/providers (notes.md, the signature
test vectors, the captured webhook headers and payload) and HubSpot's developer documentation; each
module names its sources and marks what rests on secondary reports or memory [R]. Start it
in-process with `HubSpotDouble` (a context manager) or as a process with
`python -m local.hubspot --port N`.
"""

from local.hubspot.double import HubSpotDouble

__all__ = ["HubSpotDouble"]
