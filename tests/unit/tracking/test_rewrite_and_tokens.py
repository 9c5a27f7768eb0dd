"""The HTML rewrite (byte for byte) and the tracking tokens (forgery, replay, purpose)."""

from __future__ import annotations

import json

import pytest

from mailbridge.calendar.tokens import Signer, _b64, _unb64
from mailbridge.errors import Forbidden
from mailbridge.tracking import tokens
from mailbridge.tracking.rewrite import add_pixel, rewrite_links

SIGNER = Signer(lambda: b"test-key-0123456789")


def test_only_http_links_are_rewritten_and_every_other_byte_stays() -> None:
    # Given HTML with web links (quoted, unquoted, upper-case, with entities) and other links
    html = (
        '<p>Hi <A class="x" HREF="https://example.com/a?x=1&amp;y=2">quote</A>, '
        "<a href='mailto:me@example.com'>mail</a> <a href=HTTP://example.org/b>b</a> "
        '<a title="a > b" href="#top">top</a> <a href="/rel">rel</a></p>'
    )
    # When its links are rewritten
    result = rewrite_links(html, lambda i: f"https://t.example/t/c/tok{i}")
    # Then exactly the two web links changed, in order, their originals decoded
    assert result.html == (
        '<p>Hi <A class="x" HREF="https://t.example/t/c/tok0">quote</A>, '
        "<a href='mailto:me@example.com'>mail</a> <a href=\"https://t.example/t/c/tok1\">b</a> "
        '<a title="a > b" href="#top">top</a> <a href="/rel">rel</a></p>'
    )
    assert result.links == ["https://example.com/a?x=1&y=2", "HTTP://example.org/b"]


def test_a_quoted_gt_inside_an_attribute_does_not_cut_the_tag() -> None:
    html = '<a title="1 > 0" href="https://example.com/">x</a>'
    result = rewrite_links(html, lambda i: "https://t/c")
    assert result.html == '<a title="1 > 0" href="https://t/c">x</a>'


def test_the_pixel_goes_before_the_last_body_end_or_at_the_end() -> None:
    tag = '<img src="https://t/o/x" width="1" height="1" alt="" style="border:0;width:1px;height:1px">'
    assert add_pixel("<html><body>Hi</BODY></html>", "https://t/o/x") == f"<html><body>Hi{tag}</BODY></html>"
    assert add_pixel("<p>Hi</p>", "https://t/o/x") == f"<p>Hi</p>{tag}"


def test_a_click_token_names_its_tenant_email_and_link() -> None:
    token = tokens.click_token(SIGNER, "acme", "em_1", 2)
    claims = tokens.click_claims(SIGNER, token)
    assert (claims.tenant_id, claims.email_id, claims.link) == ("acme", "em_1", 2)


def _with_claims(token: str, **changes: object) -> str:
    payload, tag = token.split(".")
    claims = json.loads(_unb64(payload)) | changes
    return _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()) + "." + tag


@pytest.mark.parametrize("change", [{"m": "em_2"}, {"t": "other"}, {"l": 0}])
def test_a_token_moved_to_another_email_tenant_or_link_is_refused(change: dict[str, object]) -> None:
    # Given a valid click token whose payload is edited (its tag kept)
    forged = _with_claims(tokens.click_token(SIGNER, "acme", "em_1", 2), **change)
    # Then it no longer verifies
    with pytest.raises(Forbidden):
        tokens.click_claims(SIGNER, forged)


def test_tokens_of_another_purpose_or_key_are_refused() -> None:
    # An open token is not a click token, an RSVP-purpose token is neither, another key fails
    with pytest.raises(Forbidden):
        tokens.click_claims(SIGNER, SIGNER.sign(tokens.OPEN, {"t": "acme", "m": "em_1", "l": 0}))
    with pytest.raises(Forbidden):
        tokens.open_claims(SIGNER, SIGNER.sign("rsvp", {"t": "acme", "m": "em_1"}))
    with pytest.raises(Forbidden):
        tokens.open_claims(Signer(lambda: b"another key"), tokens.open_token(SIGNER, "acme", "em_1"))
