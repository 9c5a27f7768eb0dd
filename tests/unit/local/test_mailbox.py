"""`make mailbox` points at the API where `make run` really listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.auth import Issuer
from local.mailbox import runner_url


def test_the_url_is_the_running_runners_whatever_its_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `PORT=3111 make run` wrote its issuer, and make passes its own default PORT to mailbox
    monkeypatch.setenv("PORT", "3000")
    issuer_file = tmp_path / "dev-issuer.json"
    Issuer.create("http://127.0.0.1:3111").save(issuer_file)
    # When / Then the runner's own URL wins
    assert runner_url(issuer_file) == "http://127.0.0.1:3111"


def test_without_a_runner_the_url_follows_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no runner has started from this checkout
    monkeypatch.setenv("PORT", "3222")
    # When / Then
    assert runner_url(tmp_path / "missing.json") == "http://127.0.0.1:3222"
