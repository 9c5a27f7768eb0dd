"""HTML sanitizing: no active content, no remote loads, inline images kept."""

from __future__ import annotations

from mailbridge.mime import normalize
from mailbridge.mime.sanitize import sanitize_html


def test_hostile_html_comes_out_without_active_content(eml):
    # Given HTML with script, style, handlers, javascript:/vbscript:/data: links, iframe, form, object
    html = normalize(eml("html_only_hostile.eml")).message.html_body

    # Then none of it survives
    assert html is not None
    lowered = html.lower()
    forbidden_bits = (
        *("<script", "<style", "<iframe", "<form", "<input", "<object"),
        *("onload", "onerror", "onclick", "javascript:", "vbscript:", "data:text"),
        *("document.cookie", "frame text"),
    )
    for forbidden in forbidden_bits:
        assert forbidden not in lowered, forbidden
    # And the harmless parts do
    assert "<h1>Big   Sale</h1>" in html
    assert '<a href="https://shop.example/sale" rel="noopener noreferrer nofollow">shop</a>' in html
    assert "<p>Bye</p>" in html


def test_remote_images_are_parked_in_data_remote_src(eml):
    html = normalize(eml("html_only_hostile.eml")).message.html_body

    assert html is not None
    assert '<img data-remote-src="https://track.example/pixel.gif" width="1" height="1">' in html
    assert ' src="https://' not in html


def test_css_cannot_load_remote_content_but_colors_survive(eml):
    html = normalize(eml("html_only_hostile.eml")).message.html_body

    assert html is not None
    assert '<p style="color:red">Everything must go!</p>' in html
    assert "url(" not in html


def test_inline_data_and_cid_images_stay_loadable():
    html = sanitize_html(
        '<img src="data:image/png;base64,AAAA"><img src="cid:logo@x"><img src="//cdn.example/a.png">'
    )

    assert html == (
        '<img src="data:image/png;base64,AAAA"><img src="cid:logo@x">'
        '<img data-remote-src="//cdn.example/a.png">'
    )


def test_data_urls_are_dropped_outside_img():
    html = sanitize_html('<a href="data:image/png;base64,AAAA">x</a>')

    assert "data:" not in html
