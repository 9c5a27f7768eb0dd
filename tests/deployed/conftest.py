"""The deployed-configuration tier: every test here runs against the stack as `make deploy
ENV=prod` configures it (tests/fixtures/aws.py `deployed_stack`), never local mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.aws import Stack
from tests.integration.stub_servers import Canary


@pytest.fixture
def stack(deployed_stack: Stack) -> Stack:
    """In this folder `stack` (and so `invoke_api`, `bus_probe` ...) is the deployed stack."""
    return deployed_stack


@pytest.fixture
def canary() -> Iterator[Canary]:
    """A loopback listener that counts connections: none, when the guard holds."""
    server = Canary()
    yield server
    server.close()
