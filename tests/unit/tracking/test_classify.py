"""Hit classification on fixtures built from documented proxy and scanner behaviour
(tests/fixtures/tracking/hits.json names the source of each case)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailbridge.tracking.classify import classify
from mailbridge.tracking.service import evidence_of

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures" / "tracking" / "hits.json").read_text()
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_documented_hits_are_classified_with_their_reasons(case: dict[str, Any]) -> None:
    # Given a hit as the documented client makes it
    headers = {"user-agent": case["user_agent"], **case.get("headers", {})}
    evidence = evidence_of(case["method"], headers, "198.51.100.23").model_copy(
        update={"seconds_since_delivery": float(case["seconds"])}
    )
    # When it is classified
    verdict = classify(
        case["kind"],
        evidence,
        link=case.get("link"),
        links_in_message=case.get("links", 0),
        recent_links_clicked=case.get("recent_links", []),
    )
    # Then the class and the reasons that decided it are the documented ones
    assert (verdict.classification, verdict.reasons) == (case["expected"], case["reasons"])


def test_a_second_link_clicked_alone_is_not_a_burst() -> None:
    # Given a browser click on link 1 of 3 while only link 0 was clicked in the window
    evidence = evidence_of(
        "GET", {"user-agent": CASES[-2]["user_agent"]}, "2001:db8:1234:5678::1"
    ).model_copy(update={"seconds_since_delivery": 600.0})
    # When it is classified
    verdict = classify("click", evidence, link=1, links_in_message=3, recent_links_clicked=[0])
    # Then two of three links is not every link at once
    assert verdict.classification == "human"


def test_evidence_keeps_only_the_network_of_the_address() -> None:
    assert evidence_of("GET", {}, "203.0.113.77").network == "203.0.113.0/24"
    assert evidence_of("GET", {}, "2001:db8:1234:5678::1").network == "2001:db8:1234::/48"
    assert evidence_of("GET", {}, "not an address").network is None
