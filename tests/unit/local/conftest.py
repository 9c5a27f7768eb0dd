"""Unit tests of the local runner: no sockets (moto's mock_aws needs none)."""

from __future__ import annotations

import pytest
from pytest_socket import disable_socket


@pytest.fixture(autouse=True)
def _no_sockets() -> None:
    disable_socket()
