"""Headers: RFC 2047 words, addresses, ids, dates, list and automation headers."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.mime import normalize
from mailbridge.mime.headers import _q, unfold
from mailbridge.models.email import EmailAddress


def test_rfc2047_subject_and_display_names_are_decoded(eml):
    # Given a message whose subject and names mix UTF-8 B and ISO-8859-1 Q encoded words
    raw = eml("rfc2047_headers.eml")

    # When it is normalized
    msg = normalize(raw).message

    # Then every header comes out as readable unicode
    assert msg.subject == "Re: Angebot über € 100 für Sie"
    assert msg.from_ == [EmailAddress(name="Jürgen Müller", address="Juergen.Mueller@example.de")]
    assert msg.reply_to == [EmailAddress(name="François Dupont", address="francois@example.fr")]
    assert msg.cc == [EmailAddress(name="Zoë", address="zoe@example.org")]


def test_addresses_keep_local_part_lower_case_domain_and_flatten_groups(eml):
    msg = normalize(eml("rfc2047_headers.eml")).message

    assert msg.sender == EmailAddress(name="Assistant", address="assist@example.de")
    assert [a.address for a in msg.to] == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert msg.to[1].name == "Bob, Jr."
    assert [a.address for a in msg.bcc] == ["hidden@example.net"]


def test_message_ids_lose_brackets_and_whitespace_but_keep_case(eml):
    msg = normalize(eml("rfc2047_headers.eml")).message

    assert msg.message_id == "AbC.123@mail.Example.DE"
    assert msg.in_reply_to == "parent.1@example.com"
    assert msg.references == ["root.0@example.com", "parent.1@example.com"]


def test_date_header_is_converted_to_aware_utc(eml):
    msg = normalize(eml("rfc2047_headers.eml")).message

    assert msg.date == datetime(2026, 4, 7, 8, 0, tzinfo=UTC)
    assert msg.date_source == "header"


def test_missing_date_falls_back_to_the_internal_date(eml):
    # Given a message without a Date header and the server's internal date
    internal = datetime(2026, 4, 20, 9, 30, tzinfo=UTC)

    # When it is normalized with and without that date
    with_internal = normalize(eml("no_date.eml"), internal_date=internal).message
    without = normalize(eml("no_date.eml")).message

    # Then the internal date is used and says so; without one there is no date at all
    assert (with_internal.date, with_internal.date_source) == (internal, "internal")
    assert (without.date, without.date_source) == (None, "none")


def test_a_naive_internal_date_is_taken_as_utc(eml):
    msg = normalize(eml("no_date.eml"), internal_date=datetime(2026, 1, 1, 12, 0)).message

    assert msg.date == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_list_and_automation_headers_are_captured(eml):
    # Given a mailing-list message
    msg = normalize(eml("mailing_list.eml")).message

    # Then the categorization fields are filled, normalized
    assert msg.list_ is not None
    assert msg.list_.list_id == "dev-list.lists.example.com"
    assert msg.list_.list_unsubscribe == [
        "mailto:leave@lists.example.com?subject=unsubscribe",
        "https://lists.example.com/unsub?u=abc",
    ]
    assert msg.list_.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    assert msg.list_.list_post == "mailto:dev-list@lists.example.com"
    assert msg.list_.list_archive == "https://lists.example.com/archive/dev-list"
    assert msg.precedence == "bulk"
    assert msg.auto_submitted == "auto-generated"
    assert msg.headers_of_interest["x-auto-response-suppress"] == "OOF, AutoReply"


def test_a_plain_message_has_no_list_info(eml):
    msg = normalize(eml("rfc2047_headers.eml")).message

    assert msg.list_ is None
    assert msg.auto_submitted is None


def test_the_model_serializes_to_json_with_the_public_field_names(eml):
    msg = normalize(eml("mailing_list.eml")).message

    dumped = msg.model_dump(mode="json", by_alias=True)

    assert dumped["from"][0]["address"] == "news@lists.example.com"
    assert dumped["list"]["list_id"] == "dev-list.lists.example.com"
    assert dumped["date"] == "2026-04-13T07:00:00Z"


def _q_reference(text: str) -> bytes:
    """RFC 2047 section 4.2 read literally: "_" is a space, "=" and two hex digits an octet,
    anything else (a lone "=", "==", "=" at the end) is itself."""
    out = bytearray()
    i = 0
    while i < len(text):
        pair = text[i + 1 : i + 3]
        if text[i] == "=" and len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
            out.append(int(pair, 16))
            i += 3
            continue
        out += b" " if text[i] == "_" else text[i].encode("ascii", "surrogateescape")
        i += 1
    return bytes(out)


@settings(max_examples=500, database=None, deadline=None)  # no wall-clock limit in a unit test
@given(st.text(alphabet="=_aF09gx. \t\udce9", max_size=16))
def test_q_encoded_text_is_read_as_rfc_2047_says(text):
    # Given the text of a "Q" encoded word, with stray "=" and 8-bit octets among the escapes
    # When it is decoded, Then "_" is a space, "=XX" an octet, and every other character itself
    assert _q(text) == _q_reference(text)


def _unfold_reference(value: str) -> str:
    """RFC 5322 section 2.2.3 one line end at a time: a line end before WSP is folding and goes,
    any other (a bare CR or LF inside a value) reads as a space."""
    out = []
    i = 0
    while i < len(value):
        width = 2 if value.startswith("\r\n", i) else 1 if value[i] in "\r\n" else 0
        if not width:
            out.append(value[i])
            i += 1
            continue
        i += width
        out.append("" if i < len(value) and value[i] in " \t" else " ")
    return "".join(out)


@settings(max_examples=500, database=None, deadline=None)  # no wall-clock limit in a unit test
@given(st.lists(st.sampled_from(["\r", "\n", "\r\n", " ", "\t", "a"]), max_size=12).map("".join))
def test_unfolding_removes_the_line_ends_before_wsp_and_reads_the_others_as_spaces(value):
    # Given a raw header value with folding, bare CRs and LFs anywhere
    # When it is unfolded, Then it is what RFC 5322 section 2.2.3 gives, one line end at a time
    assert unfold(value) == _unfold_reference(value)
