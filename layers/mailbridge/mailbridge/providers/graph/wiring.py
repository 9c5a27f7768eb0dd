"""The Graph adapter of an account, from the settings (`GRAPH_API_URL`, `MICROSOFT_CA_BUNDLE`), its
tokens (`oauth.tokens`) and the process's request budget of the account."""

from __future__ import annotations

from email.utils import getaddresses
from typing import TYPE_CHECKING

from mailbridge.providers.graph.client import GraphClient

if TYPE_CHECKING:
    from mailbridge.compose.models import ComposedMessage
    from mailbridge.models.account import Account


def client_for(account: Account) -> GraphClient:
    from mailbridge.config import get_settings
    from mailbridge.oauth.tokens import token_source
    from mailbridge.providers.graph.budget import budget_for

    settings = get_settings().microsoft
    return GraphClient(
        token_source(account),
        base_url=settings.graph_url,
        ca_file=settings.ca_bundle or None,
        budget=budget_for(f"{account.tenant_id}#{account.account_id}"),
    )


def mime_for_send_mail(composed: ComposedMessage) -> bytes:
    """The composed MIME as sendMail takes it: Graph addresses the message from its To, Cc and
    Bcc headers (user-sendmail, MIME format), so the envelope's blind copies go in a Bcc header
    (Graph does not deliver that header)."""
    head = composed.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    shown = {
        address.lower()
        for _, address in getaddresses(
            [
                line.split(":", 1)[1]
                for line in _unfolded(head)
                if line.split(":", 1)[0].lower() in ("to", "cc")
            ]
        )
    }
    blind = [r for r in composed.recipients if r.lower() not in shown]
    if not blind:
        return composed.raw
    return f"Bcc: {', '.join(blind)}\r\n".encode("ascii", "ignore") + composed.raw


def _unfolded(head: str) -> list[str]:
    lines: list[str] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        elif ":" in line:
            lines.append(line)
    return lines
