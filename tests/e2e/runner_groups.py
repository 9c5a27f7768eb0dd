"""The e2e modules that share an in-process runner (tests/e2e/conftest.py), by the fixture they share.

`make pytest` (`--dist loadfile`) sends each group's files to one worker, as one unit
(tests/conftest.py `pytest_xdist_make_scheduler`), so the group starts its runner once. Kept apart
from conftest.py so the pytest-xdist controller reads it without importing the runner.
"""

from __future__ import annotations

RUNNER_GROUPS: dict[str, tuple[str, ...]] = {
    "probe_runner": ("tests/e2e/test_audit_e2e.py", "tests/e2e/test_http_api.py", "tests/e2e/test_queues.py"),
    "mail_runner": (
        "tests/e2e/test_ai_e2e.py",
        "tests/e2e/test_assist_e2e.py",
        "tests/e2e/test_automations_e2e.py",
        "tests/e2e/test_calendar_e2e.py",
        "tests/e2e/test_campaign_e2e.py",
        "tests/e2e/test_crm_e2e.py",
        "tests/e2e/test_imap_e2e.py",
        "tests/e2e/test_nudges_e2e.py",
        "tests/e2e/test_privacy_e2e.py",
        "tests/e2e/test_realtime_e2e.py",
        "tests/e2e/test_reconcile_e2e.py",
        "tests/e2e/test_snooze_e2e.py",
    ),
    "gmail_runner": (
        "tests/e2e/test_gmail_e2e.py",
        "tests/e2e/test_gmail_send_e2e.py",
        "tests/e2e/test_gmail_sync_e2e.py",
    ),
}
