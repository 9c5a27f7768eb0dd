"""The labelled reference corpora, read for training, the benchmark and the corpus tests.

Not used at run time (nothing in a Lambda imports it). The corpora live outside the project in
`$MAILBRIDGE_CORPUS` or `../shared/data`:

- `labeled/spamassassin-public-corpus`: `labels.csv` (file, label ham/spam, sa_subset
  easy_ham/hard_ham/spam); hard_ham is legitimate commercial and newsletter mail.
- `labeled/enron-berkeley-categories`: `labels.csv` (file, folder_coarse_genre,
  coarse_label); person-to-person business mail.
- `labeled/parakweet-email-intent/Ask0729-fixed.txt`: `Yes|No<TAB>sentence` (does the sentence
  ask for an action).
- `mime/`: the MIME test corpus; `AUTOMATED_MIME` names its delivery reports, read-receipts,
  abuse reports and auto-replies (labelled by reading each file, not by running our rules).

`strip_artefacts` removes what the corpora's own tooling added, so that neither training nor
scoring can learn where a file came from.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbridge.models.email import ParsedMessage

_REPO_ROOT = Path(__file__).resolve().parents[4]

# Header fields added by the corpora's export or filtering tools, never by a sender:
# Enron (X-Folder, X-From, X-To, X-cc, X-bcc, X-FileName, X-Origin), SpamAssassin and the
# collectors' own mail setups (X-Spam-*, X-Spam, SPAM, X-Reject, X-Sieve, X-Keywords, X-Status,
# X-UIDL, X-Mozilla-Status*, X-VM-*, Delivery-Date).
ARTEFACT_HEADERS = re.compile(
    r"(?:x-folder|x-from|x-to|x-cc|x-bcc|x-filename|x-origin|x-spam(?:-[\w-]+)?|spam|x-reject"
    r"|x-sieve|x-keywords|x-status|x-uidl|x-mozilla-status\d*|x-vm-[\w-]+|delivery-date)",
    re.IGNORECASE,
)
# The Message-IDs of the Enron export (`<123.456.JavaMail.evans@thyme>`): one exporter's ids.
_JAVAMAIL_ID = re.compile(rb"(?im)^message-id:[ \t]*<[^>\n]*javamail[^>\n]*>[ \t]*\r?\n")
# SpamAssassin's report_safe banner, written into the body of mail it tagged.
_SA_BODY_REPORT = re.compile(rb"(?m)^SPAM:.*\r?\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")

# Delivery status notifications (RFC 3464), read-receipts (RFC 8098), abuse feedback reports
# (RFC 5965) and bounces in non-standard form, paths relative to `mime/`. Not in the list:
# cpython-test_email/msg_05.eml (a parser test declaring report-type=delivery-status around
# "Yadda yadda" parts without a status: nothing in it reports a delivery).
AUTOMATED_MIME: tuple[str, ...] = (
    "cpython-test_email/msg_16.eml",
    "cpython-test_email/msg_25.eml",
    "cpython-test_email/msg_43.eml",
    "enmime/mail__multipart-wo-boundary.eml",
    "enmime/testdata__delayed_dsn.eml",
    "enmime/testdata__dsn_with_multipart_alternative.eml",
    "enmime/testdata__multi_recipient_dsn.eml",
    "enmime/testdata__simple_dsn.eml",
    "enmime/testdata__simple_dsn_with_html.eml",
    "james-mime4j/mimetools-testmsgs__badbound.eml",
    "mailgun-flanker/bounce__broken-mime.eml",
    "mailgun-flanker/bounce__delayed-broken.eml",
    "mailgun-flanker/bounce__delayed.eml",
    "mailgun-flanker/bounce__gmail-invalid-address.eml",
    "mailgun-flanker/bounce__gmail-no-dns.eml",
    "mailgun-flanker/bounce__mailbox-full.eml",
    "mailgun-flanker/bounce__no-mx.eml",
    "mailgun-flanker/bounce__office365.eml",
    "mailgun-flanker/bounce__zed.eml",
    "mailgun-flanker/complaints__aol.eml",
    "mailgun-flanker/complaints__yahoo.eml",
    "mailgun-flanker/messages__disposition-notification.eml",
    "mikel-mail/mime_emails__raw_email_with_mimepart_without_content_type.eml",
    "mikel-mail/multipart_report_emails__multi_address_bounce1.eml",
    "mikel-mail/multipart_report_emails__multipart_report_multiple_status.eml",
    "mikel-mail/multipart_report_emails__report_422.eml",
    "mikel-mail/multipart_report_emails__report_530.eml",
    "mimekit/bounce.eml",
    "mimekit/delivery-status-multiple-blank-lines.eml",
    "mimekit/delivery-status-no-blank-line.eml",
    "mimekit/delivery-status.anonymized.eml",
    "mimekit/delivery-status.eml",
    "mimekit/delivery-status2.eml",
    "mimekit/disposition-notification.anonymized.eml",
    "mimekit/disposition-notification.eml",
    "mimekit/feedback-report.eml",
    "nodemailer-mailparser/delivery-status.eml",
    "php-mime-mail-parser/failure.eml",
    "spamscope-mail-parser/mail_malformed_2.eml",
)


@dataclass(frozen=True)
class LabeledFile:
    path: Path
    label: str
    subset: str


def corpus_root() -> Path | None:
    """`$MAILBRIDGE_CORPUS`, else `../shared/data` beside the repository; None when absent."""
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    candidate = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "data"
    return candidate if (candidate / "labeled").is_dir() else None


def strip_artefacts(raw: bytes) -> bytes:
    """`raw` without the corpora's bookkeeping: `ARTEFACT_HEADERS` fields (with their folded
    continuation lines), JavaMail Message-IDs, SpamAssassin's `SPAM:` body banner."""
    end = _HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        field = _FIELD.match(line)
        dropping = bool(field and ARTEFACT_HEADERS.fullmatch(field.group(1).decode("ascii", "replace")))
        if not dropping:
            kept.append(line)
    head = b"".join(kept)
    if not head.endswith(b"\n"):
        head += b"\n"
    head = _JAVAMAIL_ID.sub(b"", head)
    return head.rstrip(b"\r\n") + _SA_BODY_REPORT.sub(b"", rest)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def spamassassin(root: Path) -> list[LabeledFile]:
    """SpamAssassin public corpus: label `ham`/`spam`, subset `easy_ham`/`hard_ham`/`spam`."""
    base = root / "labeled" / "spamassassin-public-corpus"
    return [
        LabeledFile(base / row["file"], row["label"], row["sa_subset"]) for row in _rows(base / "labels.csv")
    ]


def enron(root: Path) -> list[LabeledFile]:
    """Enron (Berkeley categories): label = coarse genre (`company_business`, `personal` ...)."""
    base = root / "labeled" / "enron-berkeley-categories"
    return [
        LabeledFile(base / row["file"], row["coarse_label"], "enron") for row in _rows(base / "labels.csv")
    ]


def parakweet(root: Path) -> list[tuple[str, bool]]:
    """Parakweet email intent: (sentence, asks for an action). `$LINK` becomes a URL."""
    path = root / "labeled" / "parakweet-email-intent" / "Ask0729-fixed.txt"
    found: list[tuple[str, bool]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, sep, text = line.partition("\t")
        if sep and label in ("Yes", "No"):
            found.append((text.replace("$LINK", " http://link.example/ "), label == "Yes"))
    return found


def automated_mime(root: Path) -> list[Path]:
    """The files of `AUTOMATED_MIME` that this copy of the corpus holds."""
    return [root / "mime" / name for name in AUTOMATED_MIME if (root / "mime" / name).is_file()]


def parse(path: Path) -> ParsedMessage | None:
    """The file normalized after `strip_artefacts`; None when the normalizer refuses it."""
    from mailbridge.mime import MimeError, normalize

    try:
        return normalize(strip_artefacts(path.read_bytes())).message
    except MimeError:
        return None
