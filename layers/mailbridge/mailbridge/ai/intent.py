"""What a message asks for, and the local reply and draft templates filled from CRM fields.

`detect_intents(text)` reads the new text of a message (`reply.split_reply`'s `reply_text`, so
quoted history and the signature do not count) and returns the intents found, strongest first, by
keyword and phrase rules in this order of precedence:

- `complaint`: dissatisfaction or escalation ("disappointed", "unacceptable", "still not
  working", "refund", "cancel my ...");
- `meeting_request`: asks to meet or talk ("schedule a call", "are you available", "book a demo",
  "find a time");
- `pricing`: price, quote, discount, licence or seat questions;
- `question`: a question mark, or a sentence opening with an interrogative or a modal
  ("Can you ...", "How do ...");
- `thanks`: thanks or appreciation (weakest: most mail ends with a "Thanks,").

No rule matched: `other`. `primary_intent` is the first. The rules are ours (a few phrases per
intent, English only); the labelled Parakweet sentences train the categorizer's `action_requested`
model, not these.

`reply_suggestions(intent, category, tone, fields)` gives three short replies from the templates
of the intent (or, for `other`, of the email's category family: support, sales, bulk mail, or
general) in a `tone` (`friendly`, `formal`, `brief`), filled from `fields` (first name, company,
the open deal and its stage, the subject). `draft(goal, fields)` gives the subject and text body
of a new email for a `DraftGoal`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Intent = Literal["complaint", "meeting_request", "pricing", "question", "thanks", "other"]
Tone = Literal["friendly", "formal", "brief"]
DraftGoal = Literal["follow_up", "meeting_request", "intro", "check_in", "thank_you", "renewal"]

_RULES: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        "complaint",
        re.compile(
            r"\b(?:complain\w*|complaint|unacceptable|disappointed|disappointing|frustrat\w*|"
            r"not happy|unhappy|terrible|awful|still (?:not|broken|waiting|no)|refund|"
            r"cancel (?:my|our|the)|escalat\w*|worst)\b",
            re.I,
        ),
    ),
    (
        "meeting_request",
        re.compile(
            r"\b(?:(?:schedule|set up|book|arrange|have|hop on|jump on)\s+(?:a\s+|an\s+|some\s+)?"
            r"(?:quick\s+|short\s+)?(?:call|meeting|demo|chat|session)|are you (?:free|available)|"
            r"your availability|find a time|time to (?:talk|chat|meet)|meet (?:next|this|on|at)|"
            r"catch up)\b",
            re.I,
        ),
    ),
    (
        "pricing",
        re.compile(
            r"\b(?:price|prices|pricing|quote|quotation|discount|cost|costs|licen[cs]e|licen[cs]es|"
            r"per seat|seats|rates?|plans?)\b",
            re.I,
        ),
    ),
    (
        "question",
        re.compile(
            r"\?|(?:^|[.!]\s+)(?:can|could|would|will|do|does|did|is|are|how|what|when|where|why|which|"
            r"who)\s+\w+",
            re.I | re.M,
        ),
    ),
    ("thanks", re.compile(r"\b(?:thanks|thank you|thx|appreciate\w*|grateful)\b", re.I)),
)
BULK_CATEGORIES = frozenset({"newsletter", "marketing", "notification", "automated", "spam"})


def detect_intents(text: str | None) -> list[Intent]:
    """The intents `text` shows, strongest first (see the module docstring); `["other"]` when none."""
    found: list[Intent] = [intent for intent, rule in _RULES if text and rule.search(text)]
    return found or ["other"]


def primary_intent(text: str | None) -> Intent:
    return detect_intents(text)[0]


@dataclass(frozen=True)
class Grounding:
    """The CRM and thread fields the templates use; None when not known."""

    first_name: str | None = None
    full_name: str | None = None
    company: str | None = None
    deal: str | None = None
    stage: str | None = None
    close_date: str | None = None
    subject: str | None = None

    def values(self) -> dict[str, str]:
        return {
            "first_name": self.first_name or "there",
            "name": self.full_name or self.first_name or "there",
            "company": self.company or "your team",
            "deal": self.deal or "your request",
            "stage": self.stage or "the next step",
            "close_date": self.close_date or "the date we agreed",
            "subject": self.subject or "your message",
        }


# Three bodies per intent (or category family); {placeholders} from `Grounding.values`.
_REPLIES: dict[str, tuple[str, str, str]] = {
    "complaint": (
        "I'm sorry about this. I'm looking into it now and will come back to you today with a fix "
        "or a clear plan.",
        "Thank you for telling us, and I apologise for the trouble. Could you send me the details "
        "(what happened and when) so I can escalate it straight away?",
        "I understand the frustration. Can we get on a short call so I can hear what went wrong "
        "and put it right for {company}?",
    ),
    "meeting_request": (
        "Happy to meet. Would Tuesday or Wednesday at 10:00 work for you?",
        "Sounds good. Please pick any slot that suits you and I'll send an invitation for {deal}.",
        "Thanks for reaching out. This week is busy; could we find a time early next week?",
    ),
    "pricing": (
        "Thanks for asking. I'll send you a quote for {deal} today.",
        "Happy to help with pricing. How many seats does {company} need, and for how long?",
        "Good question. Could we go through the options on a short call? Pricing depends on the "
        "plan and volume.",
    ),
    "question": (
        "Thanks for your question. Let me check and get back to you shortly.",
        "Good question. Here is the short answer, and I'm happy to go into detail on a call.",
        "Thanks for asking. Could you tell me a bit more about what you need, so I answer the right thing?",
    ),
    "thanks": (
        "You're welcome, glad it helped.",
        "My pleasure. Let me know if there's anything else I can do for {company}.",
        "Thanks for the kind words. Talk soon.",
    ),
    "support": (
        "Thanks for getting in touch. I'm looking into this and will update you shortly.",
        "Sorry for the trouble. Could you send a screenshot or the exact error so we can fix it?",
        "Thanks for the report. We've logged it and will keep you posted on the fix.",
    ),
    "sales": (
        "Thanks for your interest. When would be a good time to talk about {deal}?",
        "Great to hear from you. I'll send over more details about {deal} today.",
        "Thanks for reaching out. Who else at {company} should join the conversation?",
    ),
    "bulk": (
        "Thanks for the update.",
        "Noted, thank you.",
        "Please remove me from this list.",
    ),
    "general": (
        "Thanks for your message. I'll get back to you shortly.",
        "Thanks, noted. I'll follow up about {subject} this week.",
        "Got it, thank you. Let me know if anything changes.",
    ),
}
_GREETING: dict[Tone, str] = {"friendly": "Hi {first_name},\n\n", "formal": "Dear {name},\n\n", "brief": ""}
_CLOSING: dict[Tone, str] = {"friendly": "\n\nBest,", "formal": "\n\nKind regards,", "brief": ""}


def template_family(intent: Intent, category: str | None) -> str:
    """Which template set answers: the intent's, else the category family's."""
    if intent != "other":
        return intent
    if category in BULK_CATEGORIES:
        return "bulk"
    if category in ("support", "sales"):
        return category
    return "general"


def reply_suggestions(intent: Intent, category: str | None, tone: Tone, grounding: Grounding) -> list[str]:
    """Three short replies (see the module docstring)."""
    values = grounding.values()
    greeting = _GREETING[tone].format_map(values)  # each template formatted once: values stay text
    return [
        greeting + body.format_map(values) + _CLOSING[tone]
        for body in _REPLIES[template_family(intent, category)]
    ]


_DRAFTS: dict[DraftGoal, tuple[str, str]] = {
    "follow_up": (
        "Following up: {deal}",
        "I wanted to follow up on {deal}. Is there anything you need from me to move to {stage}? "
        "Happy to answer any questions.",
    ),
    "meeting_request": (
        "Time for a short call about {deal}?",
        "Could we find 30 minutes this week or next to talk about {deal}? Let me know a few times "
        "that suit you and I'll send an invitation.",
    ),
    "intro": (
        "Introduction: {company} and us",
        "I'm reaching out to introduce myself as your contact here. I'd love to learn what "
        "{company} is working on and see whether we can help.",
    ),
    "check_in": (
        "Checking in",
        "It's been a while since we last spoke, so I wanted to check in. How are things going at "
        "{company}? Anything I can help with?",
    ),
    "thank_you": (
        "Thank you",
        "Thank you for your time and for working with us on {deal}. It's much appreciated.",
    ),
    "renewal": (
        "Your renewal: {deal}",
        "{deal} comes up for renewal on {close_date}. Shall we set up a short call to go through "
        "the options before then?",
    ),
}


def draft(goal: DraftGoal, grounding: Grounding) -> tuple[str, str]:
    """`(subject, text)` of a new email for `goal`, greeting and closing included."""
    values = grounding.values()
    subject, body = _DRAFTS[goal]
    text = _GREETING["friendly"].format_map(values) + body.format_map(values) + _CLOSING["friendly"]
    return subject.format_map(values), text
