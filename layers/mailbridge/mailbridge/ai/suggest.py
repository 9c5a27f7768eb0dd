"""Deterministic local text for one stored email: short reply suggestions and an extractive summary
(issue 14 points 6 and 7: the `ai.generate` automation action, and the local path the assist
routes can call with Bedrock off).

`suggest_replies(ctx, email_id, deps) -> list[str]`: up to `MAX_SUGGESTIONS` one-line replies
chosen by the email's stored category (`mailbridge.ai.categorize`; uncategorized mail counts as
`other`), addressed to the sender's first name when the From header has one. When the email
asks for something (`action_requested`), the first suggestion acknowledges it. Mail nobody
answers (`newsletter`, `marketing`, `notification`, `automated`, `spam`, and anything automated
or bulk) gets no suggestion: an empty list.

`summarize_email(ctx, email_id, deps) -> str`: who wrote about what, and the first
`SUMMARY_SENTENCES` sentences of the new text of the email (`reply_text`: the quoted history and
signature left out, `mailbridge.ai.reply`), at most `MAX_SUMMARY_CHARS` characters.

Both read the email as `GET /emails/{id}` does (`mailbridge.emails.get_email`: 404 `not_found`
for an email the caller may not read) and never log its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbridge.models.mail import Email
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.tenancy import TenantContext

MAX_SUGGESTIONS = 3
SUMMARY_SENTENCES = 2
MAX_SUMMARY_CHARS = 400
NO_REPLY = frozenset({"newsletter", "marketing", "notification", "automated", "spam"})

# {to}: ", Kim" or "" (no display name).
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "support": (
        "Thanks for reaching out{to}. I'm looking into this now and will get back to you shortly.",
        "Sorry for the trouble{to}. Could you send the exact error message or a screenshot?",
        "Thanks{to}. I've passed this to our support team; you'll hear from us today.",
    ),
    "sales": (
        "Thanks for your interest{to}! I'll send the pricing details over today.",
        "Happy to help{to}. Would a short call this week work to go through what you need?",
        "Thanks{to}. How many seats are you planning for?",
    ),
    "finance": (
        "Thanks{to}, I've forwarded this to our accounts team.",
        "Received, thank you. We'll process it by the due date.",
        "Thanks{to}. Could you send it as a PDF?",
    ),
    "calendar": (
        "Thanks{to}, that time works for me.",
        "Could we move it to later in the week?",
        "Thanks for the invitation; I'll confirm shortly.",
    ),
    "personal": (
        "Thanks{to}! Sounds great.",
        "Good to hear from you{to}. I'll get back to you later today.",
        "Thanks for letting me know!",
    ),
    "other": (
        "Thanks for your message{to}. I'll get back to you soon.",
        "Thanks{to}. Could you share a few more details?",
        "Got it, thank you!",
    ),
}
_ACKNOWLEDGE = "Will do{to}. I'll take care of this and confirm once it's done."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")


@dataclass
class SuggestDeps:
    emails: EmailStore
    blobs: BlobStore


def _load(ctx: TenantContext, email_id: str, deps: SuggestDeps) -> Email:
    from mailbridge.emails import read_email

    return read_email(ctx, email_id, deps.emails, deps.blobs)


def _first_name(email: Email) -> str | None:
    sender = email.from_[0] if email.from_ else None
    name = (sender.name or "").strip().strip("\"'") if sender else ""
    first = name.split()[0] if name else ""
    return first if first.isalpha() else None


def replies_for(email: Email) -> list[str]:
    """The suggestions for a loaded email (see the module doc)."""
    category = str(email.category or "other")
    if category in NO_REPLY or email.is_automated or email.is_bulk:
        return []
    first = _first_name(email)
    to = f", {first}" if first else ""
    templates = list(_TEMPLATES.get(category, _TEMPLATES["other"]))
    if email.action_requested:
        templates = [_ACKNOWLEDGE, *templates]
    return [template.format(to=to) for template in templates[:MAX_SUGGESTIONS]]


def suggest_replies(ctx: TenantContext, email_id: str, deps: SuggestDeps) -> list[str]:
    """Up to three short replies to the stored email `email_id` (see the module doc)."""
    return replies_for(_load(ctx, email_id, deps))


def summary_of(email: Email) -> str:
    """The summary of a loaded email (see the module doc)."""
    sender = email.from_[0] if email.from_ else None
    who = (sender.name or sender.address) if sender else None
    text = _SPACE.sub(" ", email.reply_text or email.text_body or email.snippet or "").strip()
    sentences = [s for s in _SENTENCE_END.split(text) if s][:SUMMARY_SENTENCES]
    head = f"{who or 'Someone'} wrote"
    if email.subject:
        head += f" about \u201c{email.subject.strip()}\u201d"
    summary = f"{head}: {' '.join(sentences)}" if sentences else f"{head}."
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[: MAX_SUMMARY_CHARS - 1].rstrip() + "\u2026"
    return summary


def summarize_email(ctx: TenantContext, email_id: str, deps: SuggestDeps) -> str:
    """A short extractive summary of the stored email `email_id` (see the module doc)."""
    return summary_of(_load(ctx, email_id, deps))
