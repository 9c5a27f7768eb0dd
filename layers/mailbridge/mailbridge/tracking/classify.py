"""A tracking hit's evidence -> `human`, `proxy` or `scanner`, with the reasons that decided it.

User agents are checked against crawlerdetect's maintained crawler and proxy list (JayBizzle's
Crawler-Detect, `crawlerdetect` on PyPI) rather than a list of our own. crawlerdetect names the
mail image proxies it knows (`GoogleImageProxy`, `YahooMailProxy`, the Outlook fetchers
`Outlook-iOS`, `MacOutlook`, `Microsoft Outlook`): those are `proxy`; any other
match (link checkers, security gateways, bots) is `scanner`. Our own rules cover only what a
user-agent list cannot see:

- `head_request` (scanner): HEAD asks for the headers without the content (RFC 9110 section
  9.3.2); link checkers and gateways use it to test a URL, a mail client or browser never opens
  a link or an image with it.
- `prefetch` (scanner): `Sec-Purpose: prefetch` (Fetch Metadata / MDN "Sec-Purpose"), the older
  `Purpose: prefetch` (Chrome) and `X-Moz: prefetch` (Firefox, MDN "Link prefetching FAQ") mark a
  speculative fetch the browser made on its own, not one a person asked for.
- `apple_mail_privacy_protection` (proxy): Apple Mail Privacy Protection loads remote content
  privately, in the background, whether or not the message is opened (Apple, "Use Mail Privacy
  Protection on iPhone", support.apple.com/guide/iphone/iph4ae7d6016); its fetcher sends the bare
  user agent `Mozilla/5.0`, which no browser or mail client sends.
- `no_user_agent` (scanner): every browser and mail client sends a User-Agent (RFC 9110 section
  10.1.5 "SHOULD"); scripts and some gateways do not.
- `within_seconds_of_delivery` (scanner): a hit less than SOON_AFTER_DELIVERY seconds after the
  message was handed over; security gateways scan links on receipt (Microsoft Defender for
  Office 365 Safe Links, learn.microsoft.com/defender-office-365/safe-links-about), people are
  not that quick.
- `all_links_at_once` (scanner): the click makes BURST_LINKS or more (or all, when fewer)
  distinct links of one message clicked within BURST_WINDOW seconds: a scanner following every
  link, not a reader.

Proxy wins over scanner (a proxy fetch is still a fetch by a mailbox's provider); any machine
reason makes the hit a machine hit; otherwise it is human (`reasons` then says `no_machine_signal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.tracking.models import Classification, Evidence, HitKind

if TYPE_CHECKING:
    from crawlerdetect import CrawlerDetect  # type: ignore[import-untyped]

SOON_AFTER_DELIVERY = 10.0  # seconds
BURST_WINDOW = 10.0  # seconds
BURST_LINKS = 3
APPLE_MPP_USER_AGENT = "Mozilla/5.0"
_PROXIES = {
    "googleimageproxy": "google_image_proxy",
    "ggpht.com": "google_image_proxy",
    "yahoomailproxy": "yahoo_mail_proxy",
    "outlook": "outlook_proxy",
}


@dataclass(frozen=True)
class Verdict:
    classification: Classification
    reasons: list[str]


@lru_cache(maxsize=1)
def _detector() -> CrawlerDetect:
    from crawlerdetect import CrawlerDetect  # its patterns load on the first hit only

    return CrawlerDetect()


def _crawler_match(user_agent: str) -> str | None:
    detector = _detector()
    if not detector.isCrawler(user_agent):
        return None
    return str(detector.getMatches() or "crawler")


def _agent_reasons(user_agent: str) -> tuple[list[str], list[str]]:
    """(proxy reasons, machine reasons) the user agent alone gives."""
    agent = user_agent.strip()
    if not agent:
        return [], ["no_user_agent"]
    if agent == APPLE_MPP_USER_AGENT:
        return ["apple_mail_privacy_protection"], []
    match = _crawler_match(agent)
    if match is None:
        return [], []
    lowered = match.lower()
    known = next((name for token, name in _PROXIES.items() if token in lowered), None)
    return ([known], []) if known else ([], ["crawler_user_agent"])


def classify(
    kind: HitKind,
    evidence: Evidence,
    *,
    link: int | None = None,
    links_in_message: int = 0,
    recent_links_clicked: Sequence[int] = (),
) -> Verdict:
    """`recent_links_clicked`: link indexes of this email's other clicks within BURST_WINDOW."""
    proxy, machine = _agent_reasons(evidence.user_agent)
    if evidence.method == "HEAD":
        machine.insert(0, "head_request")
    if evidence.prefetch:
        machine.append("prefetch")
    since = evidence.seconds_since_delivery
    if since is not None and since < SOON_AFTER_DELIVERY:
        machine.append("within_seconds_of_delivery")
    if kind == "click" and link is not None and links_in_message >= 2:
        distinct = {*recent_links_clicked, link}
        if len(distinct) >= min(BURST_LINKS, links_in_message):
            machine.append("all_links_at_once")
    if proxy:
        return Verdict("proxy", proxy + machine)
    if machine:
        return Verdict("scanner", machine)
    return Verdict("human", ["no_machine_signal"])
