"""Subject fallback of thread assignment: only an explicit reply/forward prefix joins a thread."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbridge.models.email import ParsedMessage
from mailbridge.sync.threads import assign_thread

DATE = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


class MemoryThreadIndex:
    """The ThreadIndex protocol over dicts (the EmailStore keeps the same two mappings)."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.subjects: dict[tuple[str, str], dict[str, Any]] = {}

    def threads_for_message_ids(self, tenant_id: str, message_ids: list[str]) -> dict[str, str]:
        return {m: self.ids[m] for m in message_ids if m in self.ids}

    def remember_message_ids(self, tenant_id: str, message_ids: list[str], thread_id: str) -> None:
        self.ids.update(dict.fromkeys(message_ids, thread_id))

    def subject_thread(self, tenant_id: str, scope: str, base_subject: str) -> dict[str, Any] | None:
        return self.subjects.get((scope, base_subject.casefold()))

    def remember_subject(
        self, tenant_id: str, scope: str, base_subject: str, thread_id: str, date: str
    ) -> None:
        self.subjects[(scope, base_subject.casefold())] = {"thread_id": thread_id, "date": date}


def _thread(index: MemoryThreadIndex, subject: str, message_id: str) -> str:
    message = ParsedMessage(message_id=message_id, subject=subject, size=1)
    return assign_thread("acme", "acc-1", message, DATE, message_id, index)


def test_a_localized_reply_prefix_joins_the_thread_of_its_base_subject() -> None:
    # Given an original, when a reply without threading headers arrives as "회신: ..."
    index = MemoryThreadIndex()
    first = _thread(index, "견적 요청", "k1@example.test")
    # Then it joins the original's thread
    assert _thread(index, "회신: 견적 요청", "k2@example.test") == first


def test_a_list_tag_alone_does_not_make_a_reply() -> None:
    # Given an earlier message "Lunch", when a new list post "[team] Lunch" arrives
    index = MemoryThreadIndex()
    first = _thread(index, "Lunch", "a@example.com")
    # Then it starts its own thread (RFC 5256 2.1: only a removed subj-refwd/fwd marks a reply)
    post = _thread(index, "[team] Lunch", "b@example.com")
    assert post != first
    # While "[team] Re: Lunch" does join (the newest thread of that base subject)
    assert _thread(index, "[team] Re: Lunch", "c@example.com") == post
