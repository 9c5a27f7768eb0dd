"""A faithful local double of Microsoft (identity platform v2.0, Graph v1.0 mail/contacts, webhooks).

Built from the documented payloads and rules in ../shared/data/providers (notes.md, providers/
msgraph) and Microsoft's public docs; each module names its sources ([D] documented, [R] reported
by clients or read from memory). Start it in-process with `MicrosoftDouble` (a context manager)
or as a process with `python -m local.microsoft --port N`.
"""

from local.microsoft.double import MicrosoftDouble

__all__ = ["MicrosoftDouble"]
