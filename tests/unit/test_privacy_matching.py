"""privacy.matching: what an erase does with one stored item (delete, scrub, keep)."""

from __future__ import annotations

from urllib.parse import quote

from mailbridge.privacy.matching import REDACTED, Needles, is_target, judge
from mailbridge.store.keys import digest

ANN = "ann@example.com"
NEEDLES = Needles(frozenset({ANN}), frozenset({"ct_0193a5b2c4d1e2f3a4b5c6d7e8"}), frozenset({"em_1"}))


def test_an_address_is_found_on_its_own_in_any_case_and_in_its_key_forms() -> None:
    # Given the address as text, upper-cased, percent-encoded and as the sender digest of gsi5
    for text in (f"to {ANN}.", ANN.upper(), f"ADDR#{quote(ANN, safe='')}", f"FROM#{digest(ANN)}"):
        # Then it is found
        assert NEEDLES.names_address(text), text
    # ... but not inside a longer address or domain
    for text in ("joann@example.com", "ann@example.com.au", "x.ann@example.com", "ann@example.community"):
        assert not NEEDLES.names_address(text), text


def test_a_key_naming_the_subject_deletes_the_item() -> None:
    assert judge({"pk": "TENANT#t", "sk": f"EMAIL#{ANN}", "contact_id": "ct_x"}, NEEDLES) == ("delete", None)
    assert judge({"pk": "TENANT#t#EMAIL#em_1", "sk": "LINK#contact#ct_y"}, NEEDLES) == ("delete", None)
    # ... and a value naming an erased email outside a list: a record derived from it
    assert judge({"pk": "TENANT#t", "sk": "LOC#a#INBOX#1#1", "email_id": "em_1"}, NEEDLES) == ("delete", None)


def test_a_record_that_only_mentions_the_subject_is_scrubbed() -> None:
    # Given a deal with the contact, an event with the attendee, a thread with the email, a set
    deal = {"pk": "TENANT#t", "sk": "DEAL#dl_1", "contact_ids": ["ct_0193a5b2c4d1e2f3a4b5c6d7e8", "ct_jo"]}
    event = {"pk": "TENANT#t", "sk": "EVENT#e", "doc": {"attendees": [{"email": ANN}, {"email": "jo@x.com"}]}}
    thread = {"pk": "TENANT#t", "sk": "THREAD#th", "email_ids": ["em_1", "em_2"], "tags": {ANN}}
    task = {
        "pk": "TENANT#t",
        "sk": "TASK#tk",
        "contact_id": "ct_0193a5b2c4d1e2f3a4b5c6d7e8",
        "title": f"Call {ANN}",
    }

    # Then the subject leaves each, the record stays
    assert judge(deal, NEEDLES) == ("scrub", {**deal, "contact_ids": ["ct_jo"]})
    assert judge(event, NEEDLES) == ("scrub", {**event, "doc": {"attendees": [{"email": "jo@x.com"}]}})
    thread_verdict = judge(thread, NEEDLES)
    assert thread_verdict == ("scrub", {"pk": "TENANT#t", "sk": "THREAD#th", "email_ids": ["em_2"]})
    assert judge(task, NEEDLES) == ("scrub", {"pk": "TENANT#t", "sk": "TASK#tk", "title": f"Call {REDACTED}"})


def test_an_unrelated_record_is_kept() -> None:
    assert judge(
        {"pk": "TENANT#t", "sk": "EMAIL#em_2", "from": [{"address": "joann@example.com"}]}, NEEDLES
    ) == (
        "keep",
        None,
    )


def test_targets_are_emails_and_drafts_naming_the_address_as_a_participant() -> None:
    assert is_target({"sk": "EMAIL#em_1", "cc": [{"name": "Ann", "address": ANN}]}, NEEDLES)
    assert is_target({"sk": "DRAFT#dr_1", "to": [ANN]}, NEEDLES)
    # ... not one that names it only in its text, nor another kind of item
    assert not is_target(
        {"sk": "EMAIL#em_3", "snippet": f"ask {ANN}", "to": [{"address": "jo@x.com"}]}, NEEDLES
    )
    assert not is_target({"sk": "NUDGE#em_1", "to": [ANN]}, NEEDLES)
