"""The log scan's own rules (tests/e2e/log_scan.py): each kind is found, the redacted forms are not.

No runner: the scan itself runs at the end of every e2e module (tests/e2e/conftest.py).
"""

from __future__ import annotations

import pytest

from tests.e2e import log_scan

_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsb2NhbC11c2VyIn0.c2lnbmF0dXJlLXBhcnQ"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ('{"level":"INFO","to":"carol@customer.example"}', "address"),
        ("[ApiFunction] sent to Carol <carol.x+tag@sub.customer.example>", "address"),
        ('{"subject":"Renewal Zq8probe"}', "body"),
        (f"Authorization: Bearer {_JWT}", "bearer_token"),
        ('{"access_token": "ya29.a0' + "A" * 40 + '"}', "oauth_token"),
        ("refresh=1//0" + "b" * 40, "oauth_token"),
        ("token EwB" + "c" * 60, "oauth_token"),
        ('{"password": "hunter22"}', "password"),
        ("imap password=hunter22", "password"),
        ('{"api_key": "pdl-123"}', "api_key"),
        ("x-api-key: local-enrichment-key", "api_key"),
    ],
)
def test_each_kind_of_personal_data_is_found_and_named_without_its_value(line: str, kind: str) -> None:
    # Given a line the runner printed
    # When it is scanned
    findings = log_scan.scan("make-run.log", "banner\n" + line)
    # Then the finding names the file, the line and the kind, not the value
    assert log_scan.Finding("make-run.log:2", kind) in findings
    assert all(line not in str(f) for f in findings)


def test_a_password_a_fixture_handed_out_is_found_anywhere_in_a_line() -> None:
    # Given a password a fixture registered
    log_scan.remember_secret("password", "Sx7-unique-pw")
    # When a line carries it without a key
    findings = log_scan.scan("out", "login failed for Sx7-unique-pw")
    # Then it is a finding
    assert findings == [log_scan.Finding("out:1", "password")]


@pytest.mark.parametrize(
    "line",
    [
        '{"level":"INFO","to":"c***@customer.example","account_id":"acc_01H"}',
        "mailbridge is running on http://127.0.0.1:3000 (AWS APIs: moto at http://127.0.0.1:5000)",
        '{"password": "***"}',
        '{"password": null, "api_key": ""}',
        "pump tick: 3 records",
    ],
)
def test_redacted_values_and_ordinary_lines_are_not_findings(line: str) -> None:
    # Given a line with nothing personal (a redacted address, a masked password, the banner)
    # When it is scanned / Then nothing is found
    assert log_scan.scan("out", line) == []


def test_the_banners_demo_token_and_enrichment_sample_are_allowed_and_nothing_else() -> None:
    # Given the runner's banner (local/__main__.py) and the same values printed elsewhere
    curl = (
        '  curl -s -X PUT -H "Authorization: Bearer $TOKEN" "$API/ai/enrichment" -d '
        '\'{"enabled": true, "base_url": "http://127.0.0.1:34013", "api_key": "local-enrichment-key"}\''
    )
    banner = f"Bearer token (tenant demo, role owner):\n{_JWT}\n\n{curl}\n"
    elsewhere = f"[ApiFunction] token {_JWT}\n[ApiFunction] {curl}\n"
    # When both are scanned
    findings = log_scan.scan("make-run.log", banner + elsewhere)
    # Then only the lines outside the banner are findings
    assert findings == [
        log_scan.Finding("make-run.log:5", "bearer_token"),
        log_scan.Finding("make-run.log:6", "api_key"),
    ]
