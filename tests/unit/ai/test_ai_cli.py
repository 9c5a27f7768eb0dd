"""`python -m mailbridge.ai.categorize`: the documented shapes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from mailbridge.ai.cli import run

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "ai"
FIELDS = {
    "file",
    "category",
    "is_spam",
    "is_bulk",
    "is_automated",
    "needs_reply",
    "action_requested",
    "is_lead",
    "confidence",
    "reasons",
}


def test_files_print_one_object_each():
    # Given two message files
    files = [str(FIXTURES / "bounce.eml"), str(FIXTURES / "newsletter.eml")]
    out = io.StringIO()
    # When the CLI categorizes them
    code = run(files, stdout=out)
    # Then it prints one JSON object per file with the documented fields
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 0
    assert [set(r) for r in records] == [FIELDS, FIELDS]
    assert [r["category"] for r in records] == ["notification", "newsletter"]


def test_unreadable_and_unparseable_files_are_reported(tmp_path):
    # Given a missing file and an empty one
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    out = io.StringIO()
    # When the CLI is run on them
    code = run([str(tmp_path / "missing.eml"), str(empty)], stdout=out)
    # Then each gets an error record and the exit status is 1
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 1
    assert [r["error"] for r in records] == ["unreadable", "empty"]


def test_sentences_print_text_flag_and_score():
    # Given sentences on stdin (and a blank line)
    stdin = io.StringIO("Could you send me the signed contract by Friday?\n\nThanks, that was helpful.\n")
    out = io.StringIO()
    # When the CLI scores them
    code = run(["--sentences"], stdin=stdin, stdout=out)
    # Then each non-blank line gets {"text", "action_requested", "score"}
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 0
    assert [set(r) for r in records] == [{"text", "action_requested", "score"}] * 2
    assert [r["action_requested"] for r in records] == [True, False]
    assert all(0.0 <= r["score"] <= 1.0 for r in records)


def test_usage_error_without_arguments():
    # When the CLI is run with nothing to do
    code = run([], stdout=io.StringIO())
    # Then it exits 2
    assert code == 2


def test_module_runs_as_documented():
    # When run as `python -m mailbridge.ai.categorize FILE`
    out = subprocess.run(
        [sys.executable, "-m", "mailbridge.ai.categorize", str(FIXTURES / "spam.eml")],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "layers" / "mailbridge"), "PATH": "/usr/bin:/bin"},
    )
    # Then it prints the record
    assert json.loads(out.stdout)["category"] == "spam"
