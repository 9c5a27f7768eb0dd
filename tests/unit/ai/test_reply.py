"""Reply text and signature (issue 14 point 5): the replies of the MIME corpus as ingest
normalizes them, and the quote headers and closers the corpus does not hold.

The expected values were read by eye from each file's text/plain part."""

from __future__ import annotations

import pytest

from mailbridge.ai import corpus
from mailbridge.ai.reply import ReplyParts, split_reply
from mailbridge.mime import normalize

ROOT = corpus.corpus_root()
TALON = ROOT / "mime" / "mailgun-talon" if ROOT else None
needs_corpus = pytest.mark.skipif(TALON is None, reason="no ../shared/data (or $MAILBRIDGE_CORPUS)")

CORPUS_REPLIES = {
    # Gmail: "On Mon, Apr 2, 2012 at 6:26 PM, Megan One <...> wrote:" then "> Hi"
    "gmail.eml": ("Hello", None),
    # Outlook: a "From: / Sent: / To: / Subject:" header block above the forwarded notification
    "outlook.eml": ("Hello", None),
    # Apple Mail: "On Apr 3, 2012, at 4:19 PM, bob wrote:"
    "apple_mail.eml": ("Hello", None),
    # Apple Mail 8: the attribution itself quoted, "> On 22 Aug 2015, at 19:21, ... wrote:"
    "apple_mail_2.eml": ("Hello", None),
    # iPhone: the mobile sign-off is the signature
    "iphone.eml": ("Hello", "Sent from my iPhone"),
    # Sparrow: an RFC 3676 "-- " signature above the attribution
    "sparrow.eml": ("Hello", "xxx\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)"),
    # Android, Russian: "02.04.2012 14:20 пользователь ... <\n...> написал:" wrapped on two lines
    "android.eml": ("Hello", None),
    # AOL: "-----Original Message-----"
    "aol.eml": ("Hello", None),
    # Yahoo: "----- Original Message -----"
    "yahoo.eml": ("Hello", None),
    # Hotmail: the original's headers quoted with ">"
    "hotmail.eml": ("Hello", None),
    # Thunderbird, answered below the quote: the attribution first, the new text after it
    "thunderbird.eml": ("Hello", None),
}


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(CORPUS_REPLIES))
def test_corpus_replies_split_into_new_text_and_signature(name: str) -> None:
    # Given a reply from the MIME corpus as ingest normalizes it
    assert TALON is not None
    text = normalize((TALON / name).read_bytes()).message.text_body
    # When it is split
    parts = split_reply(text)
    # Then the new text and the signature are what the file shows
    assert (parts.reply_text, parts.signature) == CORPUS_REPLIES[name]


OUTLOOK_HTML_ONLY = (
    b"From: Dana Reed <dana@acme.example>\r\nTo: sam@shop.example\r\nSubject: RE: Quote\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html><body><div dir="ltr">Yes, Friday works for us.</div>'
    b'<hr style="display:inline-block;width:98%" tabindex="-1">'
    b'<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Sam &lt;sam@shop.example&gt;<br>'
    b"<b>Sent:</b> Tuesday, March 3, 2026 10:00 AM<br><b>To:</b> Dana Reed<br>"
    b"<b>Subject:</b> Quote</font><div>&nbsp;</div></div>"
    b"<div>Could we meet on Friday?</div></body></html>\r\n"
)


def test_outlook_html_reply_block_is_cut() -> None:
    # Given an HTML-only Outlook reply with its divRplyFwdMsg header block
    text = normalize(OUTLOOK_HTML_ONLY).message.text_body
    # When it is split
    parts = split_reply(text)
    # Then only the new text remains
    assert parts == ReplyParts("Yes, Friday works for us.", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Sounds good.\n\nOn Mon, 2 Mar 2026 at 09:14, Ana Ruiz <ana@example.org>\nwrote:\n\n"
            "> Shall we?\n",
            "Sounds good.",
            id="gmail-wrapped-attribution",
        ),
        pytest.param(
            "D'accord.\n\nLe lun. 2 mars 2026 à 09:14, Ana <ana@example.org> a écrit :\n> Alors ?\n",
            "D'accord.",
            id="french",
        ),
        pytest.param(
            "Passt.\n\nAm 02.03.2026 um 09:14 schrieb Ana <ana@example.org>:\n> Und?\n",
            "Passt.",
            id="german",
        ),
        pytest.param(
            "Vale.\n\nEl lun, 2 mar 2026 a las 9:14, Ana (<ana@example.org>) escribió:\n> ¿Y?\n",
            "Vale.",
            id="spanish",
        ),
        pytest.param(
            "Gerne.\n\n________________________________\nVon: Ana Ruiz <ana@example.org>\n"
            "Gesendet: Montag, 2. März 2026 09:14\nAn: Ben\nBetreff: Termin\n\nPasst es?\n",
            "Gerne.",
            id="outlook-german-header-block",
        ),
        pytest.param(
            "Noted.\n\n*From:* Ana Ruiz <ana@example.org>\n*Sent:* Monday, March 2, 2026 9:14 AM\n"
            "*To:* Ben\n*Subject:* Plan\n\nOld text\n",
            "Noted.",
            id="outlook-bold-header-block",
        ),
        pytest.param(
            "Ok.\n\n-----Ursprüngliche Nachricht-----\nVon: Ana\nAn: Ben\n\nAlt\n",
            "Ok.",
            id="outlook-original-message-german",
        ),
    ],
)
def test_quote_headers_end_the_new_text(text: str, expected: str) -> None:
    # Given a reply with a quote header of some client or language
    # When it is split
    parts = split_reply(text)
    # Then the new text stops at the header
    assert parts.reply_text == expected


def test_a_sentence_ending_in_wrote_without_a_date_is_kept() -> None:
    # Given a message whose text mentions what someone wrote, without a date or an "On"
    text = "Here is what the customer wrote:\nThe parcel never arrived.\n"
    # When it is split
    parts = split_reply(text)
    # Then nothing is cut
    assert parts.reply_text == text.strip()


@pytest.mark.parametrize(
    ("text", "reply", "signature"),
    [
        pytest.param(
            "See you then.\n-- \nJane Doe\nAcme Corp\n",
            "See you then.",
            "Jane Doe\nAcme Corp",
            id="rfc3676-delimiter",
        ),
        pytest.param(
            "See you then.\n\nBest regards,\nJane Doe\nHead of Sales, Acme Corp\n+1 415 555 0100\n",
            "See you then.\n\nBest regards,",
            "Jane Doe\nHead of Sales, Acme Corp\n+1 415 555 0100",
            id="closer",
        ),
        pytest.param(
            "Passt.\n\nMit freundlichen Grüßen\nJana Berg\n",
            "Passt.\n\nMit freundlichen Grüßen",
            "Jana Berg",
            id="closer-german",
        ),
        pytest.param(
            "Thanks,\nbut the second paragraph below is a long one that is surely no signature because "
            "it goes on and on past any line a signature would hold, well past a hundred characters.\n",
            "Thanks,\nbut the second paragraph below is a long one that is surely no signature because "
            "it goes on and on past any line a signature would hold, well past a hundred characters.",
            None,
            id="closer-followed-by-prose",
        ),
    ],
)
def test_signature_is_split_from_the_new_text(text: str, reply: str, signature: str | None) -> None:
    # Given a reply that ends with a signature block (or prose after a closer)
    # When it is split
    parts = split_reply(text)
    # Then the signature is apart from the new text
    assert (parts.reply_text, parts.signature) == (reply, signature)


def test_no_text_gives_nulls() -> None:
    # Given no text body, or one made only of a quote
    # When it is split
    # Then both parts are null
    assert split_reply(None) == ReplyParts(None, None)
    assert split_reply("> only quoted\n> lines\n") == ReplyParts(None, None)
