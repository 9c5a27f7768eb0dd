"""Suite-wide rules: fake AWS credentials, and no skipped test under CI=true."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.fixtures import botocore_loader, moto_events

# Never reach a real account: every tier runs on moto or the local runner.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mailbridge")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

# moto's EventBridge builds a JSONPath parser per target input path per event: parse each path once.
moto_events.install()
# Every boto3/botocore session reads botocore's JSON models through one loader (its cache).
botocore_loader.install()

pytest_plugins = ["tests.fixtures.aws", "tests.fixtures.dovecot", "tests.fixtures.smtp"]

_skipped: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` (the Makefile's), except that the e2e modules sharing a runner
    (tests/e2e/runner_groups.py) go to one worker as one unit: their runner starts once. (xdist's
    `loadgroup` with `xdist_group` marks would do it, but it renames items through `item._nodeid`,
    which pytest 9 no longer reads: every test lands alone.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    from tests.e2e.runner_groups import RUNNER_GROUPS

    group_of = {path: group for group, paths in RUNNER_GROUPS.items() for path in paths}

    class LoadFileOrGroup(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return group_of.get(path, path)

    return LoadFileOrGroup(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI a skip means a missing service or missing ../shared/data: that is a failure.
    if os.environ.get("CI") == "true" and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("CI") == "true" and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} skipped test(s) count as failures: {', '.join(_skipped[:10])}",
            red=True,
        )
