"""`python -m mailbridge.mime`: one JSON line per file, never a traceback."""

from __future__ import annotations

import io
import json

from mailbridge.mime.cli import main
from tests.unit.mime.conftest import FIXTURES


def run(args):
    out = io.StringIO()
    code = main(args, out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_prints_one_json_object_per_file_with_errors_inline():
    # Given a good message, an unparseable one and a path that does not exist
    good, bad = str(FIXTURES / "nested_multipart.eml"), str(FIXTURES / "not_mime.eml")

    code, records = run([good, bad])

    assert code == 0
    assert records[0]["subject"] == "nested"
    assert records[0]["attachments"][1]["filename"] == "report.pdf"
    assert records[1] == {"file": bad, "error": "not_rfc822", "detail": "no RFC 5322 header found"}


def test_unreadable_paths_and_usage_errors_exit_1_still_as_json(tmp_path):
    code, records = run([str(tmp_path / "missing.eml")])
    assert code == 1
    assert records[0]["error"] == "unreadable"

    code, records = run([])
    assert code == 1
    assert records[0]["error"] == "usage"


def test_long_bodies_are_truncated(tmp_path):
    path = tmp_path / "long.eml"
    path.write_bytes(b"Subject: long\r\n\r\n" + b"x" * 2000)

    _, records = run([str(path)])

    assert len(records[0]["text_body"]) == 501
