"""Header evidence: what a message says about itself, read before any model.

Each rule is a pure function of a `ParsedMessage` returning an `Evidence` (or None) and cites
the standard or provider documentation it follows. `header_evidence` runs them all, in order.

The automated-mail markers are read from the ParsedMessage fields (`list_`, `auto_submitted`,
`precedence`, `bounce`, `calendar`, `headers_of_interest`, `attachments`, `from_`).
TODO(shared markers): the MIME rewrite is moving these markers into one helper under
`mailbridge.mime`; when it lands, `list_headers`, `precedence`, `auto_submitted`,
`autoreply_headers` and `mailer_daemon` should call it (as `mailbridge.crm.policy.is_automated`
should), so categorization and CRM matching cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbridge.ai.models import Category
    from mailbridge.models.email import ParsedMessage


@dataclass(frozen=True)
class Evidence:
    """One rule's finding: the reason string, what it implies, and how sure it is."""

    reason: str
    confidence: float
    is_bulk: bool = False
    is_automated: bool = False
    category: Category | None = None


# Precedence values that mean "do not answer, sent to many" (RFC 3834 section 2 and 3.1.8
# discourage auto-replies to them; bulk/list/junk are the values deployed since RFC 2076).
BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
# Local parts of the mailboxes MTAs send reports from (RFC 5321 section 4.5.1 postmaster;
# MAILER-DAEMON by convention since sendmail).
REPORT_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
# no-reply in its spellings (as mailbridge.crm.policy.NOREPLY).
_NOREPLY = re.compile(r"(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply)(?:[-_.+].*)?|.*[-_.]noreply")
# Non-standard bounces (MTAs that predate or ignore RFC 3464) say what they are in the subject.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:able|ed)\b|undelivered mail returned to sender|delivery status notification"
    r"|returned mail\b|mail delivery (?:failed|failure|system)|delivery (?:failure|failed|notification:"
    r"|has failed|problem)|failure notice|mail system error|non[- ]?delivery|warning: could not send"
    r"|delayed mail|(?:warning: )?message delayed|message not delivered|nicht zustellbar"
    r"|unzustellbar|non remis|banned file)",
    re.IGNORECASE,
)
# The opening boilerplate of the common MTAs' bounces: Exchange (in its languages), Postfix,
# exim, qmail, sendmail, Gmail.
_BOUNCE_BODY = re.compile(
    r"delivery has failed to these recipients or groups|your message (?:could not|couldn't|wasn't) be"
    r" delivered|could not be delivered to one or more recipients|this is the mail system at host"
    r"|i'm sorry to have to inform you that your message could not|this is the qmail-send program"
    r"|this message was created automatically by mail delivery software|delivery to the following"
    r" recipients? failed|the following message to .{0,200} was undeliverable|was undeliverable"
    r"|zustellung an folgende empf\S+nger oder gruppen ist fehlgeschlagen|nachricht konnte nicht"
    r" zugestellt werden|la remise aux destinataires ou groupes suivants a \S+chou|error en la entrega"
    r"|配信に失敗しました|邮件无法送达|投递失败",
    re.IGNORECASE,
)
_BOUNCE_BODY_CHARS = 1500
# RFC 3834 section 3.1.5 recommends "Auto:" for auto-replies; Exchange and Gmail write the rest.
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto:|automatic reply:|autoreply:|auto-reply:|auto reply:|out of (?:the )?office\b"
    r"|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|respuesta autom[áa]tica"
    r"|risposta automatica|resposta autom[áa]tica|vacation reply)",
    re.IGNORECASE,
)
# Report parts other than a DSN (the normalizer keeps them as attachments).
_REPORT_TYPES = {
    "message/disposition-notification": "disposition-notification",  # RFC 8098
    "message/global-disposition-notification": "disposition-notification",  # RFC 6533
    "message/feedback-report": "feedback-report",  # RFC 5965
    "text/rfc822-headers": "rfc822-headers",  # RFC 6522 section 4 (the returned headers)
}
_TRUE_HEADER = re.compile(r"\s*(?:yes|true|1|on)\b", re.IGNORECASE)


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].lower().split("+", 1)[0]


def list_headers(message: ParsedMessage) -> Evidence | None:
    """Mailing-list and bulk-sender headers: List-Id (RFC 2919), List-Unsubscribe, List-Post,
    List-Help, List-Archive (RFC 2369), List-Unsubscribe-Post: List-Unsubscribe=One-Click
    (RFC 8058, which mail sent to many must carry under Gmail's and Yahoo's 2024 sender rules).
    Any of them: bulk."""
    info = message.list_
    if info is None:
        return None
    if info.list_unsubscribe_post:
        reason = "header:list-unsubscribe-post"
    elif info.list_unsubscribe:
        reason = "header:list-unsubscribe"
    elif info.list_id:
        reason = "header:list-id"
    else:
        reason = "header:list"
    return Evidence(reason, 0.95, is_bulk=True)


def feedback_id(message: ParsedMessage) -> Evidence | None:
    """Feedback-ID (Google Postmaster Tools, "Feedback Loop"): only bulk senders set it. Bulk."""
    if "feedback-id" not in message.headers_of_interest:
        return None
    return Evidence("header:feedback-id", 0.9, is_bulk=True)


def precedence(message: ParsedMessage) -> Evidence | None:
    """Precedence: bulk / list / junk (RFC 3834 section 2; RFC 2076 section 3.9). Bulk."""
    value = (message.precedence or "").strip().lower()
    if value not in BULK_PRECEDENCE:
        return None
    return Evidence(f"header:precedence-{value}", 0.9, is_bulk=True)


def auto_submitted(message: ParsedMessage) -> Evidence | None:
    """Auto-Submitted other than `no` (RFC 3834 section 5): auto-replied (an autoresponder),
    auto-generated (a program), auto-notified (RFC 5436). Automated."""
    value = (message.auto_submitted or "").strip().lower()
    keyword = value.split("(", 1)[0].split(";", 1)[0].strip()
    if not keyword or keyword == "no":
        return None
    return Evidence("header:auto-submitted", 0.97, is_automated=True, category="automated")


def autoreply_headers(message: ParsedMessage) -> Evidence | None:
    """The autoresponders' own markers that RFC 3834 section 1 describes as widespread:
    X-Autoreply / X-Autorespond / X-Auto-Reply (yes), and X-MS-Exchange-Generated-Message-Source
    (Exchange, [MS-OXCMAIL]: set on messages the server itself generated). Automated."""
    headers = message.headers_of_interest
    for name in ("x-autoreply", "x-autorespond", "x-auto-reply"):
        value = headers.get(name)
        if value is not None and (name == "x-autorespond" or _TRUE_HEADER.match(value)):
            return Evidence(f"header:{name}", 0.95, is_automated=True, category="automated")
    if "x-ms-exchange-generated-message-source" in headers:
        return Evidence(
            "header:x-ms-exchange-generated-message-source", 0.9, is_automated=True, category="automated"
        )
    return None


def delivery_status(message: ParsedMessage) -> Evidence | None:
    """A delivery status notification: multipart/report with a message/delivery-status part
    (RFC 3464, RFC 6522; message/global-delivery-status, RFC 6533). Automated, notification."""
    if message.bounce is None:
        return None
    return Evidence("dsn:delivery-status", 0.99, is_automated=True, category="notification")


def other_reports(message: ParsedMessage) -> Evidence | None:
    """Machine reports besides DSNs: read receipts (message/disposition-notification, RFC 8098),
    abuse feedback (message/feedback-report, RFC 5965), returned headers (text/rfc822-headers,
    RFC 6522). Automated, notification."""
    for attachment in message.attachments:
        kind = _REPORT_TYPES.get(attachment.content_type.lower())
        if kind is not None:
            return Evidence(f"report:{kind}", 0.97, is_automated=True, category="notification")
    return None


def mailer_daemon(message: ParsedMessage) -> Evidence | None:
    """Sent by the mail system itself: From (or Sender) MAILER-DAEMON or postmaster (RFC 5321
    section 4.5.1 and 4.5.5: reports come from the mail system with a null reverse-path).
    Automated, notification."""
    senders = [*message.from_, *([message.sender] if message.sender else [])]
    if any(_local_part(s.address) in REPORT_SENDERS for s in senders):
        return Evidence("header:from-mailer-daemon", 0.97, is_automated=True, category="notification")
    return None


def bounce_subject(message: ParsedMessage) -> Evidence | None:
    """A bounce in a form older than RFC 3464 (qmail, Exchange 5.x, Lotus): the subject says
    it ("Undeliverable:", "Returned mail:", "Delivery Status Notification" ...); a reply to
    one ("Re: Undeliverable") is a person writing. Automated, notification."""
    if _BOUNCE_SUBJECT.match(message.subject or ""):
        return Evidence("subject:bounce", 0.9, is_automated=True, category="notification")
    return None


def bounce_body(message: ParsedMessage) -> Evidence | None:
    """A bounce without a delivery-status part: the body opens with an MTA's standard wording
    (Exchange "Delivery has failed to these recipients or groups" in its languages, Postfix
    "This is the mail system at host", exim, qmail, sendmail, Gmail). Not for replies.
    Automated, notification."""
    subject = message.subject or ""
    if message.in_reply_to or re.match(r"\s*(?:re|aw|sv)\s*:", subject, re.IGNORECASE):
        return None
    if _BOUNCE_BODY.search((message.text_body or "")[:_BOUNCE_BODY_CHARS]):
        return Evidence("body:bounce", 0.9, is_automated=True, category="notification")
    return None


def auto_reply_subject(message: ParsedMessage) -> Evidence | None:
    """An out-of-office or auto-reply by its subject ("Auto:" is RFC 3834 section 3.1.5's
    recommendation; "Automatic reply:" Exchange; "Out of Office" the rest). Automated."""
    if _AUTO_REPLY_SUBJECT.match(message.subject or ""):
        return Evidence("subject:auto-reply", 0.9, is_automated=True, category="automated")
    return None


def noreply_sender(message: ParsedMessage) -> Evidence | None:
    """A no-reply sender address (no-reply@, donotreply@ ...): a machine sending a notice that
    cannot be answered. Automated, notification."""
    for sender in message.from_:
        if _NOREPLY.fullmatch(_local_part(sender.address)):
            return Evidence("header:from-noreply", 0.85, is_automated=True, category="notification")
    return None


def calendar_part(message: ParsedMessage) -> Evidence | None:
    """An iCalendar part (text/calendar, RFC 5545) carrying an iTIP method (RFC 5546 section
    1.4: REQUEST, REPLY, CANCEL, COUNTER ...). Calendar."""
    if message.calendar is None:
        return None
    method = (message.calendar.method or "publish").lower()
    return Evidence(f"calendar:{method}", 0.95, category="calendar")


Rule = Callable[["ParsedMessage"], Evidence | None]

# Order matters only for `reasons` (strongest first) and for which category a rule proposes
# first: reports, then automated markers, then bulk markers, then calendar.
RULES: tuple[Rule, ...] = (
    delivery_status,
    other_reports,
    mailer_daemon,
    bounce_subject,
    bounce_body,
    auto_submitted,
    autoreply_headers,
    auto_reply_subject,
    noreply_sender,
    list_headers,
    feedback_id,
    precedence,
    calendar_part,
)


def header_evidence(message: ParsedMessage, rules: tuple[Rule, ...] = RULES) -> list[Evidence]:
    """Every rule's evidence for `message`, in `rules` order."""
    return [found for rule in rules if (found := rule(message)) is not None]
