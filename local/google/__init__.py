"""A faithful local double of Google (OAuth 2.0, Gmail API v1, Pub/Sub push, People API v1).

Built from the documented payloads and rules in ../shared/data/providers (notes.md, the Gmail and
Pub/Sub discovery documents and samples) and Google's public docs; each module names its sources.
Start it in-process with `GoogleDouble` (a context manager) or as a process with
`python -m local.google --port N`.
"""

from local.google.double import GoogleDouble

__all__ = ["GoogleDouble"]
