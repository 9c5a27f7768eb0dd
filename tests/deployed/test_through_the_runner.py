"""The same refusals over HTTP, through the local runner started with the prod parameters (the
template's own API routes, authorizer and functions, as `sam deploy --config-env prod` sets them)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.clock import ManualClock
from local.runner import Runner
from tests.e2e.conftest import call
from tests.fixtures.aws import CA_VARIABLES, TEMPLATE, deploy_parameters
from tests.integration.stub_servers import Canary


@pytest.fixture(scope="module")
def deployed_runner() -> Iterator[Runner]:
    with pytest.MonkeyPatch.context() as patch:
        for name in CA_VARIABLES:
            patch.delenv(name, raising=False)
        clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        with Runner(
            templates=[TEMPLATE], port=0, clock=clock, parameters=deploy_parameters("prod")
        ) as runner:
            yield runner


def account(host: str, port: int, security: str) -> dict[str, object]:
    return {
        "provider": "imap",
        "address": "alice@example.com",
        "imap": {"host": host, "port": port, "security": security, "username": "alice", "password": "pw"},
    }


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254"])
def test_a_loopback_or_metadata_mail_host_is_400_host_not_allowed(
    deployed_runner: Runner, canary: Canary, host: str
) -> None:
    # Given a member of a tenant on the deployed stack
    token = deployed_runner.token(tenant="acme", role="member", sub="alice")
    # When they connect a mailbox on a loopback or metadata host
    status, answer = call(deployed_runner, "POST", "/accounts", token, account(host, canary.port, "ssl"))
    # Then it is 400 host_not_allowed and nothing was connected to
    assert status == 400, answer
    assert answer["error"]["code"] == "host_not_allowed"
    assert canary.accepted == 0


def test_a_plain_text_mail_server_is_400_insecure_not_allowed(
    deployed_runner: Runner, canary: Canary
) -> None:
    token = deployed_runner.token(tenant="acme", role="member", sub="alice")
    status, answer = call(
        deployed_runner, "POST", "/accounts", token, account("127.0.0.1", canary.port, "none")
    )
    assert status == 400, answer
    assert answer["error"]["code"] == "insecure_not_allowed"
    assert canary.accepted == 0
