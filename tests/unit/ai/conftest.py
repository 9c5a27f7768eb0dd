"""Loads the hand-written .eml fixtures of tests/fixtures/ai and builds small messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailbridge.mime import normalize
from mailbridge.models.email import ParsedMessage

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ai"


@pytest.fixture
def fixture_message() -> Callable[[str], ParsedMessage]:
    def load(name: str) -> ParsedMessage:
        return normalize((FIXTURES / name).read_bytes()).message

    return load


@pytest.fixture
def message() -> Callable[..., ParsedMessage]:
    """A plain-text message with the given extra header lines, subject, sender and body."""

    def build(
        *headers: str,
        subject: str = "Project notes",
        sender: str = "Kim Park <kim.park@partner.example>",
        body: str = "Here are the notes from today's meeting about the roadmap.\n",
        content_type: str = "text/plain; charset=utf-8",
    ) -> ParsedMessage:
        lines = [
            f"From: {sender}",
            "To: you@example.com",
            f"Subject: {subject}",
            "Date: Tue, 14 Apr 2026 10:00:00 +0000",
            "Message-ID: <m-1@partner.example>",
            *headers,
            "MIME-Version: 1.0",
            f"Content-Type: {content_type}",
            "",
            body,
        ]
        return normalize("\r\n".join(lines).encode()).message

    return build
