"""The `crm` fixture: one harness per CRM adapter in `crm_providers.PROVIDERS`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbridge.crm.remote.protocol import CrmProvider
from tests.contract.crm_providers import PROVIDERS, CrmHarness


@pytest.fixture(params=PROVIDERS, ids=lambda factory: factory.__name__)
def crm(request: pytest.FixtureRequest) -> Iterator[CrmHarness]:
    with request.param() as harness:
        yield harness


@pytest.fixture
def provider(crm: CrmHarness) -> CrmProvider:
    return crm.provider
