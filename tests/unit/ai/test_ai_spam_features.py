"""The spam model reads what the sender wrote, not how the mail is built nor where it travelled."""

from __future__ import annotations

from mailbridge.ai import features
from mailbridge.ai.categorize import categorize
from mailbridge.ai.model import load_weights
from mailbridge.mime import normalize
from mailbridge.models.email import ParsedMessage

PROMOTION = (
    "You have been selected to receive $1,000,000 CASH. This is NOT spam. Click here to claim your\n"
    "prize now, limited time offer, act now! To remove yourself from our mailing list click here.\n"
    "Earn money from home, no risk, 100% guaranteed, order today and make money fast!!!\n"
)


def _spam(message: ParsedMessage) -> float:
    model = load_weights().model("spam")
    return model.score(features.message_features(message, form=model.form), top=0).probability


def build(
    body: str,
    *,
    headers: str = "",
    date: str = "Tue, 14 Apr 2026 10:00:00 +0000",
    content_type: str = "text/plain; charset=utf-8",
) -> str:
    return (
        f"{headers}From: Kim Park <kim.park@partner.example>\nTo: you@example.com\n"
        f"Subject: Re: the offer\nDate: {date}\nMessage-ID: <m-1@partner.example>\n"
        f"MIME-Version: 1.0\nContent-Type: {content_type}\n\n" + body
    )


def test_a_reply_is_judged_by_its_own_words_not_the_promotion_it_quotes():
    # Given a promotion on its own, and a short reply quoting it below an Outlook header block
    alone = normalize(build(PROMOTION).encode()).message
    reply = normalize(
        build(
            "Is this one of ours? Please check with legal before Friday.\n\n"
            "From: Prize Center [mailto:claims@prize-center.example]\nSent: Monday, April 13, 2026\n"
            "To: Kim Park\nSubject: the offer\n\n" + PROMOTION
        ).encode()
    ).message
    # When both are categorized
    promotion, answer = categorize(alone), categorize(reply)
    # Then the promotion is spam and the reply about it is not
    assert promotion.is_spam
    assert not answer.is_spam
    assert answer.category != "spam"


def test_an_html_reply_scores_like_the_same_reply_in_plain_text():
    # Given one short reply sent as plain text and as multipart/alternative with an HTML part
    text = "Thanks Dana, Thursday at 10 works for me. I will bring the draft contract.\n"
    plain = normalize(build(text).encode()).message
    html = (
        "<html><head><style>p.MsoNormal{margin:0cm}</style></head><body><div class=WordSection1>"
        "<p class=MsoNormal><span>Thanks Dana, Thursday at 10 works for me. I will bring the "
        "draft contract.</span></p></div></body></html>"
    )
    alternative = build(
        "--b1\nContent-Type: text/plain; charset=utf-8\n\n" + text + "\n--b1\n"
        "Content-Type: text/html; charset=utf-8\n\n" + html + "\n--b1--\n",
        content_type='multipart/alternative; boundary="b1"',
    )
    both = normalize(alternative.encode()).message
    assert both.html_body  # the HTML part was read
    # When the spam model scores both
    # Then having an HTML part changes nothing (HTML is how today's mailers write replies)
    assert _spam(both) == _spam(plain)


def test_date_and_transport_headers_do_not_move_the_spam_score():
    # Given one message as sent in 2002 through the SpamAssassin collectors' hosts, and in 2026
    old = build(
        PROMOTION,
        date="Mon, 26 Aug 2002 10:12:57 -0400",
        headers=(
            "Delivered-To: zzzz@localhost.spamassassin.taint.org\n"
            "Received: from mail.webnote.net [193.120.211.219]\n\tby localhost with POP3 (fetchmail-5.9.0)\n"
            "\tfor zzzz@localhost (single-drop); Mon, 26 Aug 2002 15:12:57 +0100 (IST)\n"
            "Received: from dogma.slashnull.org by phobos.labs.spamassassin.taint.org (Postfix)\n"
        ),
    )
    new = build(PROMOTION)
    # When the spam model scores both
    # Then the score is the same: neither the year nor the route tells spam from ham
    assert _spam(normalize(old.encode()).message) == _spam(normalize(new.encode()).message)
