"""Categorize one normalized email: header evidence first, then the local model.

`categorize(message, history=None) -> Categorization`. Decision order (each step's reasons go
into `reasons`, strongest first):

1. Reports and automated markers (`rules`: DSN, MDN/ARF reports, MAILER-DAEMON, bounce and
   auto-reply subjects, Auto-Submitted, X-Autoreply, no-reply senders): category `notification`
   (reports, no-reply senders) or `automated` (unless list headers make it bulk: step 4);
   `is_automated` either way.
2. The spam model (`model:spam:<p>`): `spam` when it passes its threshold. A sender the tenant
   has written to (`history:replied`) or a known contact needs p >= `TRUSTED_SPAM_THRESHOLD`.
3. A calendar part (RFC 5546): `calendar`.
4. Bulk: list headers (RFC 2369/2919/8058), Feedback-ID, Precedence bulk/list/junk, or the bulk
   model (`model:bulk:<p>`): `marketing` when the text is promotional (`feature:promotional`),
   else `newsletter`.
5. Person-to-person mail: `finance`, `support` or `sales` by their vocabulary
   (`feature:finance-terms` ...), else `personal` for personal vocabulary, else `other`.

`action_requested`: the sentence model over what the sender wrote (quoted history dropped), true
when one sentence passes its threshold; never for automated mail. `needs_reply`: person-to-person
mail (not spam, bulk or automated) that requests an action, asks a question, or is a calendar
REQUEST. `is_lead`: a `sales` email from a sender with no history with the tenant and not a known contact.

CLI: `python -m mailbridge.ai.categorize FILE...` prints one JSON object per file (the fields of
`Categorization` plus `file`; a file that cannot be read or parsed gives `{"file", "error"}`);
`python -m mailbridge.ai.categorize --sentences` reads one sentence per line on stdin and prints
`{"text", "action_requested", "score"}` per line. Exit status 1 when a file failed, 2 on usage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbridge.ai import features, rules
from mailbridge.ai.model import Score, Weights, load_weights
from mailbridge.ai.models import Categorization, Category, SenderHistory

if TYPE_CHECKING:
    from mailbridge.models.email import ParsedMessage

TRUSTED_SPAM_THRESHOLD = 0.98
MAX_SENTENCES = 40

# Vocabulary of the person-to-person categories: (pattern, category). Two hits, or one in the
# subject, decide; ties go to the order below (finance before support before sales).
_TOPICS: tuple[tuple[Category, re.Pattern[str]], ...] = (
    (
        "finance",
        re.compile(
            r"\b(?:invoices?|receipts?|payments?|paid|remittance|billing|bill|statement of account"
            r"|overdue|past due|purchase order|wire transfer|bank transfer|refund|credit note|vat"
            r"|accounts payable|accounts receivable|amount due|due date|expenses?|reimburse\w*|payroll)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "support",
        re.compile(
            r"\b(?:not working|doesn'?t work|does not work|broken|error|errors|bug|issue|problem"
            r"|crash\w*|fails?|failed|can'?t (?:log ?in|access|open|connect)|cannot (?:log ?in|access"
            r"|open|connect)|unable to|ticket|help desk|helpdesk|support|troubleshoot\w*|outage"
            r"|password reset|reset my password|locked out)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "sales",
        re.compile(
            r"\b(?:pricing|price list|prices?|quotes?|quotation|proposal|demo|trial|purchase|buy"
            r"|licen[cs]es?|subscription|plan|discount|contract|interested in|rfp|request for proposal"
            r"|budget|seats|order|vendor|procurement)\b",
            re.IGNORECASE,
        ),
    ),
)
_PERSONAL = re.compile(
    r"\b(?:birthday|dinner|lunch|weekend|family|kids|wife|husband|mom|dad|vacation|holiday|party"
    r"|wedding|congratulations|miss you|love|hugs|drinks|game tonight)\b",
    re.IGNORECASE,
)
_PROMOTIONAL = re.compile(
    r"\b(?:sale|discount|coupon|promo(?:tion)?|offer|deal|deals|save|savings|shop"
    r"|buy now|order now|free shipping|limited time|exclusive|special|new arrivals|free)\b|_pct_|_money_",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"\?\s*(?:$|\n)", re.MULTILINE)


@dataclass(frozen=True)
class _Models:
    spam: Score
    bulk: Score | None


def _reason(score: Score) -> str:
    return f"model:{score.task}:{score.probability:.2f}"


def _feature_reasons(score: Score) -> list[str]:
    return [f"feature:{name}" for name in score.top_features]


def action_scores(text: str, weights: Weights | None = None) -> list[tuple[str, Score]]:
    """Each sentence of `text` (up to MAX_SENTENCES) with the action model's score."""
    model = (weights or load_weights()).model("action")
    return [
        (sentence, model.score(features.sentence_features(sentence), top=0))
        for sentence in features.sentences(text, MAX_SENTENCES)
    ]


def sentence_action(text: str, weights: Weights | None = None) -> Score:
    """The action model on one sentence."""
    model = (weights or load_weights()).model("action")
    return model.score(features.sentence_features(text), top=0)


def _topic(message: ParsedMessage, text: str) -> tuple[Category, int, str] | None:
    subject = message.subject or ""
    best: tuple[Category, int, str] | None = None
    for category, pattern in _TOPICS:
        hits = len(pattern.findall(text)) + 2 * len(pattern.findall(subject))
        if hits >= 2 and (best is None or hits > best[1]):
            best = (category, hits, f"feature:{category}-terms")
    return best


def _bulk_category(
    message: ParsedMessage, evidence: list[rules.Evidence], bulk: Score | None
) -> tuple[Category, float, list[str]]:
    """`marketing` when the text is promotional, else `newsletter`."""
    text = features.normalize_text(f"{message.subject or ''}\n{message.text_body or ''}")
    category: Category = "marketing" if len(_PROMOTIONAL.findall(text)) >= 3 else "newsletter"
    decided: list[str] = []
    if bulk is not None:
        confidence = bulk.probability
        decided = [_reason(bulk), *_feature_reasons(bulk)]
    else:
        confidence = max(found.confidence for found in evidence if found.is_bulk)
    if category == "marketing":
        decided.append("feature:promotional")
    return category, confidence, decided


def _person_category(
    message: ParsedMessage, written: str, bulk: Score | None
) -> tuple[Category, float, list[str]]:
    """finance / support / sales by vocabulary, else personal, else other."""
    person = max(1.0 - bulk.probability if bulk is not None else 0.5, 0.5)
    topic = _topic(message, written)
    category: Category
    if topic is not None:
        category, confidence, decided = topic[0], min(0.95, 0.5 + 0.1 * topic[1]) * person, [topic[2]]
    elif len(_PERSONAL.findall(written)) >= 2:
        category, confidence, decided = "personal", 0.6 * person, ["feature:personal-terms"]
    else:
        category, confidence, decided = "other", 0.6 * person, []
    if bulk is not None:
        decided.append(_reason(bulk))
    return category, confidence, decided


def _history_reasons(history: SenderHistory | None) -> list[str]:
    if history is None:
        return []
    found: list[str] = []
    if history.known_contact:
        found.append("history:known-contact")
    if history.sent:
        found.append("history:replied")
    if history.received and not history.sent:
        found.append("history:received-before")
    if not (history.known_contact or history.sent or history.received):
        found.append("history:first-contact")
    return found


def _trusted(history: SenderHistory | None) -> bool:
    return history is not None and (history.known_contact or history.sent > 0)


def categorize(
    message: ParsedMessage,
    history: SenderHistory | None = None,
    *,
    weights: Weights | None = None,
) -> Categorization:
    """The `Categorization` of one normalized message (see the module docstring for the order).

    `history`: the sender's history with the tenant, when the caller knows it. `weights`: the
    model weights (default: the shipped `weights.json`, loaded once). Pure and deterministic.
    """
    weights = weights or load_weights()
    evidence = rules.header_evidence(message)
    reasons = [found.reason for found in evidence]
    is_bulk_header = any(found.is_bulk for found in evidence)
    is_automated = any(found.is_automated for found in evidence)
    history_reasons = _history_reasons(history)

    body = message.text_body or ""
    written = features.new_text(body[: features.MAX_BODY_CHARS])
    spam_model = weights.model("spam")
    spam = spam_model.score(features.message_features(message, form=spam_model.form))
    spam_threshold = TRUSTED_SPAM_THRESHOLD if _trusted(history) else spam_model.threshold
    is_spam = spam.probability >= spam_threshold and not any(
        found.category == "notification" for found in evidence
    )
    bulk: Score | None = None
    if not is_bulk_header:
        bulk = weights.model("bulk").score(features.message_features(message))
    is_bulk = is_bulk_header or (bulk is not None and bulk.positive and not _trusted(history))

    actions = action_scores(written, weights) if written.strip() and not is_automated else []
    best_action = max((score for _, score in actions), key=lambda s: s.probability, default=None)
    action_requested = best_action is not None and best_action.positive

    # A report always decides; an automated marker decides unless list headers say it is bulk
    # (list software and newsletters may also carry Auto-Submitted).
    automated = next(
        (
            found
            for found in evidence
            if found.category == "notification" or (found.category == "automated" and not is_bulk_header)
        ),
        None,
    )
    calendar = next((found for found in evidence if found.category == "calendar"), None)
    if automated is not None:
        category: Category = automated.category or "automated"
        confidence, decided = automated.confidence, []
    elif is_spam:
        category, confidence = "spam", spam.probability
        decided = [_reason(spam), *_feature_reasons(spam)]
    elif calendar is not None:
        category, confidence, decided = "calendar", calendar.confidence, []
    elif is_bulk:
        category, confidence, decided = _bulk_category(message, evidence, bulk)
    else:
        category, confidence, decided = _person_category(message, written, bulk)

    if not is_spam and category != "spam" and spam.probability >= 0.5:
        decided.append(_reason(spam))
    person_mail = not (is_spam or is_bulk or is_automated)
    question = bool(_QUESTION.search(written))
    invite = calendar is not None and calendar.reason == "calendar:request"
    needs_reply = person_mail and (action_requested or question or invite)
    if action_requested and best_action is not None:
        decided.append(_reason(best_action))
    is_lead = (
        category == "sales"
        and person_mail
        and not (history is not None and (history.known_contact or history.sent or history.received))
    )
    if is_lead:
        decided.append("rule:lead")
    return Categorization(
        category=category,
        is_spam=is_spam,
        is_bulk=is_bulk,
        is_automated=is_automated,
        needs_reply=needs_reply,
        action_requested=action_requested,
        is_lead=is_lead,
        confidence=round(min(1.0, max(0.0, confidence)), 4),
        reasons=list(dict.fromkeys([*reasons, *decided, *history_reasons])),
    )


def main(argv: list[str] | None = None) -> int:
    from mailbridge.ai.cli import run

    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
