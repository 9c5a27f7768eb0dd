"""Shard 1 of the ICS corpus import test (`tests/integration/calendar_corpus.py`)."""

from __future__ import annotations

import pytest

from tests.fixtures.aws import Stack
from tests.integration.calendar_client import Invoke
from tests.integration.calendar_corpus import check_shard

pytestmark = pytest.mark.corpus


def test_corpus_shard_imports_or_is_refused_with_a_reason_and_reimports_unchanged(
    invoke_api: Invoke, stack: Stack
) -> None:
    check_shard(1, invoke_api, stack)
