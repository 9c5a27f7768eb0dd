"""Thread assignment, JWZ-style, done incrementally as messages arrive in any order.

A message joins the thread of the nearest relative already known (its own Message-ID registered
by an earlier child, then In-Reply-To, then References from the nearest ancestor up). Without
relatives, a reply or forward (Re:/Fwd: prefix) joins the newest thread of the same base subject
in the same mailbox within 30 days; anything else starts a thread. Thread ids derive from the
conversation's root Message-ID, so they are stable whatever order messages arrive in, and every
Message-ID the message names is registered so that later relatives find this thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from mailbridge.mime import base_subject
from mailbridge.mime.subject import is_reply_or_forward
from mailbridge.models.email import ParsedMessage
from mailbridge.store.keys import digest

SUBJECT_WINDOW = timedelta(days=30)


class ThreadIndex(Protocol):
    def threads_for_message_ids(self, tenant_id: str, message_ids: list[str]) -> dict[str, str]: ...

    def remember_message_ids(self, tenant_id: str, message_ids: list[str], thread_id: str) -> None: ...

    def subject_thread(self, tenant_id: str, scope: str, base_subject: str) -> dict[str, Any] | None: ...

    def remember_subject(
        self, tenant_id: str, scope: str, base_subject: str, thread_id: str, date: str
    ) -> None: ...


def _is_reply_or_forward(subject: str | None) -> bool:
    # An explicit prefix from the shared table ("Re:", "AW:", "회신:"), not just a list tag.
    return is_reply_or_forward(subject)


def thread_id_for_root(tenant_id: str, root: str) -> str:
    return "th_" + digest(f"{tenant_id}\n{root}", 24)


def assign_thread(
    tenant_id: str,
    account_id: str,
    message: ParsedMessage,
    date: datetime,
    fallback_root: str,
    index: ThreadIndex,
    provider_thread: str | None = None,
) -> str:
    """The message's thread id. `provider_thread` (Gmail's `threadId`) decides when no relative
    is known yet: the provider's own threading, scoped to the mailbox, before subject guessing."""
    own = message.message_id
    # Nearest relative first: a parent's thread is a better guess than a distant ancestor's.
    relatives = [r for r in [message.in_reply_to, *reversed(message.references)] if r]
    lookups = list(dict.fromkeys([m for m in [own, *relatives] if m]))
    known = index.threads_for_message_ids(tenant_id, lookups) if lookups else {}

    thread_id = next((known[m] for m in lookups if m in known), None)
    if thread_id is None and provider_thread:
        thread_id = thread_id_for_root(tenant_id, f"provider-thread\n{account_id}\n{provider_thread}")
    subject = base_subject(message.subject) if message.subject else ""
    if thread_id is None and subject and _is_reply_or_forward(message.subject):
        hit = index.subject_thread(tenant_id, account_id, subject)
        if hit and _within_window(str(hit.get("date", "")), date):
            thread_id = str(hit["thread_id"])
    if thread_id is None:
        root = (message.references[0] if message.references else None) or message.in_reply_to or own
        thread_id = thread_id_for_root(tenant_id, root or fallback_root)

    unknown = [m for m in lookups if m not in known]
    if unknown:
        index.remember_message_ids(tenant_id, unknown, thread_id)
    if subject:
        index.remember_subject(tenant_id, account_id, subject, thread_id, date.isoformat())
    return thread_id


def _within_window(stored: str, date: datetime) -> bool:
    try:
        seen = datetime.fromisoformat(stored)
    except ValueError:
        return False
    return abs(date - seen) <= SUBJECT_WINDOW
