"""TEMPORARY placeholder of the suppression interface (brief CQ, branch `suppression`): the real
module replaces this file at merge. Nothing is suppressed and no unsubscribe headers are made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SuppressionDeps:
    """What the suppression list needs (the real one holds its store and signer)."""


def suppressed(deps: SuppressionDeps, tenant: str, addresses: Sequence[str]) -> set[str]:  # noqa: ARG001
    """The normalized addresses among `addresses` that are suppressed (placeholder: none)."""
    return set()


def unsubscribe_headers(
    deps: SuppressionDeps,  # noqa: ARG001
    tenant: str,  # noqa: ARG001
    campaign_id: str,  # noqa: ARG001
    address: str,  # noqa: ARG001
) -> dict[str, str]:
    """RFC 8058 `List-Unsubscribe` and `List-Unsubscribe-Post` for one recipient (placeholder: none)."""
    return {}
