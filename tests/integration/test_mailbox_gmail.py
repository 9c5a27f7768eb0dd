"""`make mailbox PROVIDER=gmail` against a running Google double: seeds once, prints the steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.google import GoogleDouble
from local.google_wiring import write_state
from local.mailbox import SEED, gmail_mailbox, main


def test_seeds_a_gmail_mailbox_once_and_prints_how_to_connect_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running double whose URLs `make run` wrote down
    with GoogleDouble() as google:
        state = tmp_path / "google-double.json"
        write_state(google, "http://127.0.0.1:3999", state)

        # When the mailbox is made, twice
        assert gmail_mailbox("demo", seed=True, state_file=state) == 0
        assert gmail_mailbox("demo", seed=True, state_file=state) == 0

        # Then the user has the demo mail once
        assert len(google.gmail.mailbox("demo@example.com").messages) == len(SEED)
    # And the two steps name the runner's start route with the mailbox as login hint
    out = capsys.readouterr().out
    assert "export API=http://127.0.0.1:3999" in out
    assert '"$API/oauth/gmail/start?login_hint=demo@example.com"' in out
    assert 'curl -sL "$URL"' in out


def test_it_prints_a_working_command_that_shows_each_message_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import urllib.request

    # Given a seeded mailbox in a running double
    with GoogleDouble() as google:
        state = tmp_path / "google-double.json"
        write_state(google, "http://127.0.0.1:3999", state)
        assert gmail_mailbox("demo", seed=True, state_file=state) == 0
        out = capsys.readouterr().out

        # When the user runs the printed inspect command (its URL)
        line = next(x for x in out.splitlines() if "jq -c" in x)
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=10) as response:
            listed = json.loads(response.read())

    # Then it lists every seeded message with its labels and Subject
    assert len(listed) == len(SEED)
    assert all("UNREAD" in m["labelIds"] and m["subject"] for m in listed)


def test_without_make_run_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gmail_mailbox("demo", seed=True, state_file=tmp_path / "missing.json") == 1
    assert "make run" in capsys.readouterr().err


def test_the_default_gmail_mailbox_is_not_the_imap_demo_mailbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running double, and the IMAP demo mailbox demo@example.com connected in the tenant
    with GoogleDouble() as google:
        state = tmp_path / "google-double.json"
        write_state(google, "http://127.0.0.1:3999", state)
        monkeypatch.setattr("local.google_wiring.STATE_FILE", state)

        # When `make mailbox PROVIDER=gmail` runs with its defaults
        assert main(["--provider", "gmail"]) == 0

        # Then it seeds another address, so both can be connected in one tenant
        assert google.gmail.mailbox("ada@example.com").messages
    assert '"$API/oauth/gmail/start?login_hint=ada@example.com"' in capsys.readouterr().out
