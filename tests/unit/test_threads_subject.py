"""Thread assignment (JWZ-style, incremental, any arrival order) and its subject fallback: only an
explicit reply/forward prefix joins a thread by subject, within 30 days."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.models.email import ParsedMessage
from mailbridge.sync.threads import assign_thread

DATE = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


class MemoryThreadIndex:
    """The ThreadIndex protocol over dicts, as the EmailStore keeps it: per tenant, a Message-ID
    keeps the first thread written for it, a subject keeps its newest thread; every Message-ID
    read and write counts."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.subjects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.id_writes: list[str] = []
        self.id_reads: list[list[str]] = []

    def threads_for_message_ids(self, tenant_id: str, message_ids: list[str]) -> dict[str, str]:
        self.id_reads.append(list(message_ids))
        return {m: self.ids[(tenant_id, m)] for m in message_ids if (tenant_id, m) in self.ids}

    def remember_message_ids(self, tenant_id: str, message_ids: list[str], thread_id: str) -> None:
        for message_id in message_ids:
            self.id_writes.append(message_id)
            self.ids.setdefault((tenant_id, message_id), thread_id)

    def subject_thread(self, tenant_id: str, scope: str, base_subject: str) -> dict[str, Any] | None:
        return self.subjects.get((tenant_id, scope, base_subject))

    def remember_subject(
        self, tenant_id: str, scope: str, base_subject: str, thread_id: str, date: str
    ) -> None:
        key = (tenant_id, scope, base_subject)
        if key not in self.subjects or self.subjects[key]["date"] <= date:
            self.subjects[key] = {"thread_id": thread_id, "date": date}


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


# ------------------------------------------------------------------------------ relatives


def _msg(
    message_id: str | None,
    *,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    subject: str | None = "Budget",
) -> ParsedMessage:
    return ParsedMessage(
        message_id=message_id, in_reply_to=in_reply_to, references=list(references), subject=subject, size=1
    )


def _assign(
    index: MemoryThreadIndex,
    message: ParsedMessage,
    *,
    date: datetime = DATE,
    account: str = "acc-1",
    tenant: str = "acme",
    fallback: str = "fallback-root",
) -> str:
    return assign_thread(tenant, account, message, date, fallback, index)


def _root_id(tenant: str, root: str) -> str:
    return "th_" + hashlib.sha256(f"{tenant}\n{root}".encode()).hexdigest()[:24]


def test_a_conversation_gets_the_same_thread_id_whatever_order_it_arrives_in() -> None:
    # Given a root, a reply and a reply to the reply
    root = _msg("root@x")
    reply = _msg("reply@x", in_reply_to="root@x", references=("root@x",))
    deeper = _msg("deeper@x", in_reply_to="reply@x", references=("root@x", "reply@x"))
    # When they arrive in order, and in reverse order into another index
    index, other = MemoryThreadIndex(), MemoryThreadIndex()
    in_order = [_assign(index, m) for m in (root, reply, deeper)]
    backwards = [_assign(other, m) for m in (deeper, reply, root)]
    # Then every message of both runs is in one thread, named after the root's Message-ID
    assert set(in_order) == set(backwards) == {_root_id("acme", "root@x")}
    assert index.ids == other.ids


def test_a_thread_id_belongs_to_its_tenant() -> None:
    index = MemoryThreadIndex()
    assert _assign(index, _msg("root@x"), tenant="acme") == _root_id("acme", "root@x")
    assert _assign(index, _msg("root@x"), tenant="globex") == _root_id("globex", "root@x")


def test_a_message_without_relatives_or_own_id_is_named_after_the_fallback_root() -> None:
    index = MemoryThreadIndex()
    assert _assign(index, _msg(None, subject=None), fallback="acc-1/INBOX/7/42") == _root_id(
        "acme", "acc-1/INBOX/7/42"
    )
    # A message known only by its In-Reply-To is named after that parent
    assert _assign(index, _msg(None, in_reply_to="parent@x", subject=None)) == _root_id("acme", "parent@x")


def test_the_nearest_known_relative_decides() -> None:
    # Given two known threads, one of a distant ancestor and one of the direct parent
    index = MemoryThreadIndex()
    far = _assign(index, _msg("far@x", subject="A"))
    near = _assign(index, _msg("near@x", subject="B"))
    assert far != near
    # When a message names both, the parent last in References (RFC 5322 3.6.4) / Then it joins the
    # parent's thread
    assert _assign(index, _msg("c1@x", references=("far@x", "near@x"), subject="C")) == near
    # And In-Reply-To comes before References
    assert _assign(index, _msg("c2@x", in_reply_to="far@x", references=("near@x",), subject="D")) == far
    # And the message's own id, registered by an earlier child, comes before both
    index.remember_message_ids("acme", ["own@x"], "th_registered")
    assert _assign(index, _msg("own@x", in_reply_to="near@x", subject="E")) == "th_registered"


def test_a_message_naming_no_message_id_reads_no_index() -> None:
    # Given a message without Message-ID, In-Reply-To or References
    index = MemoryThreadIndex()
    # When it is threaded, Then no Message-ID lookup is made (a request for nothing)
    _assign(index, _msg(None))
    assert index.id_reads == []
    # While a message with an id is looked up once, with its id
    _assign(index, _msg("m@x"))
    assert index.id_reads == [["m@x"]]


def test_only_unknown_message_ids_are_written_and_all_of_them_are() -> None:
    # Given a known root
    index = MemoryThreadIndex()
    thread = _assign(index, _msg("root@x"))
    index.id_writes.clear()
    # When a reply names it and an unknown middle message
    reply = _msg("reply@x", in_reply_to="middle@x", references=("root@x", "middle@x"))
    assert _assign(index, reply) == thread
    # Then the two unknown ids were written, each once, and the known one was not
    assert sorted(index.id_writes) == ["middle@x", "reply@x"]
    assert index.threads_for_message_ids("acme", ["middle@x", "reply@x"]) == {
        "middle@x": thread,
        "reply@x": thread,
    }


def test_nothing_is_written_when_every_id_is_known() -> None:
    index = MemoryThreadIndex()
    _assign(index, _msg("root@x"))
    index.id_writes.clear()
    _assign(index, _msg("root@x"))
    assert index.id_writes == []


# ------------------------------------------------------------------------------ subject fallback


def test_a_reply_within_30_days_either_way_joins_and_one_outside_starts_its_own() -> None:
    for offset, joins in (
        (timedelta(days=30), True),
        (-timedelta(days=30), True),
        (timedelta(days=30, seconds=1), False),
        (-timedelta(days=30, seconds=1), False),
    ):
        # Given a conversation "Budget" last seen at DATE
        index = MemoryThreadIndex()
        first = _assign(index, _msg("b1@x"))
        # When a reply without threading headers is dated `offset` from it
        reply = _assign(index, _msg("b2@x", subject="Re: Budget"), date=DATE + offset)
        # Then it joins only within the window (either side of the stored date)
        assert (reply == first) is joins, offset


def test_the_subject_is_remembered_per_account_with_the_message_date() -> None:
    index = MemoryThreadIndex()
    thread = _assign(index, _msg("b1@x", subject="Fwd: Budget"), account="acc-9")
    assert index.subjects == {("acme", "acc-9", "Budget"): {"thread_id": thread, "date": DATE.isoformat()}}
    # And a reply in another mailbox does not join it
    assert _assign(index, _msg("b2@x", subject="Re: Budget"), account="acc-1") != thread


def test_a_message_without_a_subject_neither_joins_nor_is_remembered_by_subject() -> None:
    index = MemoryThreadIndex()
    _assign(index, _msg("b1@x", subject=""))
    assert index.subjects == {}
    assert _assign(index, _msg("b2@x", subject=None)) == _root_id("acme", "b2@x")


def test_a_stored_subject_without_a_readable_date_is_not_joined() -> None:
    index = MemoryThreadIndex()
    index.subjects[("acme", "acc-1", "Budget")] = {"thread_id": "th_old", "date": "not a date"}
    assert _assign(index, _msg("b2@x", subject="Re: Budget")) == _root_id("acme", "b2@x")
