"""The tenant's suppression list and RFC 8058 one-click unsubscribe (issue 17 point 4).

An address lands on the list (`store/suppression.py`, one entry per address, the first wins) by:

- `unsubscribed`: the recipient's one-click unsubscribe, `POST /u/{token}` (RFC 8058);
- `hard_bounce`: a delivery status notification (RFC 3464) received on a synced mailbox, or an
  SMTP reply refusing the recipient when the outbox sent (RFC 5321 section 4.2.1), that says the
  **address** fails for good (`address_failed_for_good`): a 5.x.x status whose subject is the
  address or the mailbox (RFC 3463 sections 3.2-3.3: 5.1.x but the sender's 5.1.7/5.1.8, and
  5.2.1 mailbox disabled), or without an enhanced status code a 550/551/553 reply (RFC 5321
  section 4.2.3). A permanent failure about something else (5.7.x policy, as a DMARC or spam
  block; 5.2.2 mailbox full; 5.3.x/5.4.x the receiving system; 5.6.x content) says nothing about
  the address and suppresses nothing, nor do 4.x.x / 4xx (transient);
- `complaint`: an abuse report in the Abuse Reporting Format (RFC 5965 `multipart/report;
  report-type=feedback-report`): its `Original-Rcpt-To` fields, else the `To` of the returned
  message;
- `manual`: a member adding it (`POST /crm/suppressions`).

Campaign sending asks two things of it: `suppressed` (who to skip) and `unsubscribe_headers`
(the `List-Unsubscribe` / `List-Unsubscribe-Post` fields of each recipient's message).

Addresses are normalized as CRM addresses are (`crm.models.normalize_address`: trimmed, lower-
cased), so the list and the contacts agree on what one address is.

Erasure (GDPR Art. 17): the privacy erase job deletes the address's entry and first records
`erased_digest` of it (`forget_address`); `suppressed` still finds the address by that digest, so
an objection to direct marketing keeps being honoured (Art. 17(3)(b) and (e), Art. 21(3)) with no
address stored. The digest is HMAC-SHA256 (RFC 2104) under a per-tenant key, itself HMAC-SHA256
of the tenant id under a key derived from the same link-signing secret with its own label: an
address cannot be found from the stored digests without the secret, nor one tenant's digest
matched against another's.

Unsubscribe tokens: `base64url(version || nonce || AES-256-GCM(claims))` (RFC 4648 section 5,
NIST SP 800-38D), claims `{t: tenant, c: campaign id, a: address}`. The key is derived with
HMAC-SHA256 (RFC 2104) from the link-signing secret tracking and calendar links use
(`CALENDAR_SECRET_ARN`), under its own label, so no other token verifies here. Authenticated
encryption rather than tracking's signed-but-readable tokens because this token must carry the
address (the list needs it and nothing is stored per send), and a URL ends up in access logs and
mail-client caches: the address is never readable from it. A changed character, a token for
another tenant or address, or any other purpose's token fails the tag: 404 `link_not_found`,
nothing stored. No expiry (a campaign's unsubscribe link must keep working).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

from pydantic import AfterValidator, ConfigDict, EmailStr, Field

from mailbridge.crm.models import normalize_address
from mailbridge.errors import Invalid, NotFound
from mailbridge.models.base import Model
from mailbridge.observability import logger
from mailbridge.store.pagination import Page
from mailbridge.store.suppression import Reason

if TYPE_CHECKING:
    from mailbridge.store.suppression import SuppressionStore
    from mailbridge.tenancy import TenantContext

ONE_CLICK = "List-Unsubscribe=One-Click"
"""The `List-Unsubscribe-Post` value and the POST body of RFC 8058 section 3.1."""
MAX_ADDRESS_BYTES = 320  # RFC 5321 section 4.5.3.1: local part 64 + "@" + domain 255
MAX_CAMPAIGN_ID = 100
MAX_BODY_BYTES = 16_384

_VERSION = 1
_NONCE = 12
_TAG = 16
_AAD = b"mailbridge.unsubscribe"
_KEY_LABEL = b"mailbridge/unsubscribe-token/v1"
_ERASED_LABEL = b"mailbridge/suppression-erased/v1"
_ERASED_HEX = 32  # 128 bits of the HMAC (RFC 2104 section 5 allows truncation to half its output)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,1024}")
_SMTP_REPLY = re.compile(r"([2-5]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3})\b)?")
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})\b")
# RFC 3463 section 3.2: X.1.5 "destination address valid", X.1.7/X.1.8 the sender's address
_NOT_THE_RECIPIENT = frozenset({5, 7, 8})
# RFC 5321 section 4.2.3: 550 mailbox unavailable, 551 user not local, 553 mailbox name not allowed
_ADDRESS_REPLIES = frozenset({"550", "551", "553"})


@dataclass
class SuppressionDeps:
    """`key`: the link-signing secret (read on first use); `base_url`: where `/u/{token}` is
    served (`PUBLIC_API_URL`, or the API a request came to). Only minting and checking tokens
    need those two; recording bounces needs the store alone."""

    store: SuppressionStore
    key: Callable[[], bytes] | None = None
    base_url: str = ""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class Suppression(Model):
    """One entry of the suppression list."""

    address: str = Field(description="Lower-cased, as CRM addresses are", examples=["carol@customer.example"])
    reason: Reason = Field(description="Why it is on the list")
    source: str | None = Field(
        default=None,
        description="The campaign of an unsubscribe, the email id of a bounce or complaint "
        "(the DSN / report received, or the outbound email refused); none for manual entries",
    )
    at: datetime = Field(description="When it was listed")


class SuppressionCreate(Model):
    """`POST /crm/suppressions`: add an address by hand (reason `manual`)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"address": "carol@customer.example"}]}
    )

    address: Annotated[EmailStr, AfterValidator(normalize_address)] = Field(description="Stored lower-cased")


class SuppressionAdded(Model):
    suppression: Suppression
    created: bool = Field(description="False when the address was already listed (the entry is unchanged)")


# ------------------------------------------------------------------------------------- addresses
def _normal(address: str) -> str | None:
    """The normalized address, or None when it cannot be one (no "@", too long for a key)."""
    value = normalize_address(address)
    if "@" not in value or len(value.encode("utf-8")) > MAX_ADDRESS_BYTES:
        return None
    return value


def _record(item: Mapping[str, Any]) -> Suppression:
    return Suppression(
        address=str(item["address"]),
        reason=item["reason"],
        source=str(item["source"]) if item.get("source") else None,
        at=datetime.fromisoformat(str(item["at"])),
    )


def add(
    deps: SuppressionDeps, tenant_id: str, address: str, reason: Reason, source: str | None
) -> tuple[Suppression, bool]:
    """List `address` (already normalized); idempotent: (the stored entry, whether this call made it)."""
    entry: dict[str, Any] = {
        "address": address,
        "reason": reason,
        "at": deps.now().astimezone(UTC).isoformat(),
    }
    if source:
        entry["source"] = source
    created = deps.store.add(tenant_id, entry)
    if created:
        logger.info("suppressed", extra={"reason": reason})
        return _record(entry), True
    stored = deps.store.find(tenant_id, address)
    return (_record(stored) if stored else _record(entry)), False


# ------------------------------------------------------------------------------------- campaign sending
def suppressed(deps: SuppressionDeps, tenant: str, addresses: Sequence[str]) -> set[str]:
    """The normalized addresses among `addresses` that are on the tenant's list: one BatchGetItem
    per 100 distinct addresses, and (with `deps.key`) one GetItem of the erased addresses'
    digests. Anything that cannot be an address is simply not listed."""
    normal = [a for a in (_normal(x) for x in addresses) if a is not None]
    if not normal:
        return set()
    found = deps.store.present(tenant, normal)
    if deps.key is not None:
        erased = deps.store.erased(tenant)
        if erased:
            key = deps.key()
            found |= {a for a in normal if erased_digest(key, tenant, a) in erased}
    return found


def erased_digest(key: bytes, tenant: str, address: str) -> str:
    """HMAC-SHA256 of the normalized `address` under the tenant's key (HMAC-SHA256 of the tenant id
    under the link secret's `_ERASED_LABEL` key), as 32 lower-case hex digits."""
    base = hmac.new(key, _ERASED_LABEL, hashlib.sha256).digest()
    tenant_key = hmac.new(base, tenant.encode(), hashlib.sha256).digest()
    return hmac.new(tenant_key, address.encode(), hashlib.sha256).hexdigest()[:_ERASED_HEX]


def forget_address(deps: SuppressionDeps, tenant: str, address: str) -> None:
    """Record the erased address's digest (idempotent); the caller then deletes its entry.
    RuntimeError without `deps.key`: an erase must never drop an objection silently."""
    if deps.key is None:
        raise RuntimeError("erasing a suppression entry needs the link-signing key (SuppressionDeps.key)")
    deps.store.add_erased(tenant, erased_digest(deps.key(), tenant, address))


def unsubscribe_headers(deps: SuppressionDeps, tenant: str, campaign_id: str, address: str) -> dict[str, str]:
    """The RFC 8058 fields for one recipient's campaign message:

        {"List-Unsubscribe": "<https://{api}/u/{token}>",
         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    The URL is in angle brackets (RFC 2369 section 2) and is plain ASCII without white space
    (base64url token), so compose writes it as it is: never RFC 2047-encoded (not allowed in a
    structured field, RFC 2047 section 5) and one line far below 998 characters (RFC 5322
    section 2.1.1). The values are compose's `WrittenHeader`s (`compose.headers.plain`), which
    `EmailMessage`'s generator writes verbatim: `msg[name] = value` keeps them so. A plain `str`
    of the same text assigned to a message with compose's policy is folded by the stdlib into
    RFC 2047 encoded words, which breaks the URL: write these fields with `headers.plain`.
    `Invalid` `invalid_recipient` when `address` cannot be an address; ValueError when
    `deps.base_url` is not an absolute http(s) URL (PUBLIC_API_URL unset in a queue consumer)."""
    normal = _normal(address)
    if normal is None or not campaign_id or len(campaign_id) > MAX_CAMPAIGN_ID:
        raise Invalid("an unsubscribe link needs a campaign id and an address", code="invalid_recipient")
    from mailbridge.compose.headers import plain

    if not deps.base_url.startswith(("https://", "http://")):
        # A configuration error, not the caller's input: a relative link is useless in mail.
        raise ValueError("unsubscribe links need an absolute base URL (PUBLIC_API_URL)")
    token = unsubscribe_token(deps, tenant, campaign_id, normal)
    url = f"<{deps.base_url.rstrip('/')}/u/{token}>"
    return {
        "List-Unsubscribe": plain("List-Unsubscribe", url),
        "List-Unsubscribe-Post": plain("List-Unsubscribe-Post", ONE_CLICK),
    }


# ------------------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class UnsubscribeClaims:
    tenant_id: str
    campaign_id: str
    address: str


def _aead(deps: SuppressionDeps) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if deps.key is None:
        raise RuntimeError("unsubscribe tokens need the link-signing key (SuppressionDeps.key)")
    return AESGCM(hmac.new(deps.key(), _KEY_LABEL, hashlib.sha256).digest())


def unsubscribe_token(deps: SuppressionDeps, tenant_id: str, campaign_id: str, address: str) -> str:
    claims = json.dumps({"a": address, "c": campaign_id, "t": tenant_id}, separators=(",", ":")).encode()
    nonce = secrets.token_bytes(_NONCE)
    sealed = _aead(deps).encrypt(nonce, claims, _AAD)
    return base64.urlsafe_b64encode(bytes([_VERSION]) + nonce + sealed).decode().rstrip("=")


def _not_found() -> NotFound:
    # One answer for every bad token: which check failed is of no use to a caller.
    return NotFound("this link is not valid", code="link_not_found")


def token_claims(deps: SuppressionDeps, token: str) -> UnsubscribeClaims:
    """The claims of a token `unsubscribe_token` made with this key; NotFound `link_not_found`
    for anything else (changed, truncated, another key or purpose)."""
    from cryptography.exceptions import InvalidTag

    if not _TOKEN.fullmatch(token):
        raise _not_found()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _not_found() from exc
    if len(raw) <= 1 + _NONCE + _TAG or raw[0] != _VERSION:
        raise _not_found()
    try:
        plain = _aead(deps).decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], _AAD)
        claims = json.loads(plain)
    except (InvalidTag, ValueError) as exc:
        raise _not_found() from exc
    if not isinstance(claims, dict):
        raise _not_found()
    tenant, campaign, address = claims.get("t"), claims.get("c"), claims.get("a")
    if not (isinstance(tenant, str) and isinstance(campaign, str) and isinstance(address, str)):
        raise _not_found()
    return UnsubscribeClaims(tenant, campaign, address)


def one_click(deps: SuppressionDeps, token: str, content_type: str, body: bytes) -> bool:
    """RFC 8058 section 3.2: the POST of `List-Unsubscribe=One-Click` lists the token's address
    as `unsubscribed` (source: the campaign). The token is checked first (404 `link_not_found`,
    nothing stored), then the body (400 `one_click_required`). Idempotent: True only for the
    call that listed it."""
    claims = token_claims(deps, token)
    if not is_one_click(content_type, body):
        raise Invalid(f"the body must be the form field {ONE_CLICK} (RFC 8058)", code="one_click_required")
    _, created = add(deps, claims.tenant_id, claims.address, "unsubscribed", claims.campaign_id)
    return created


def is_one_click(content_type: str, body: bytes) -> bool:
    """True when the body carries `List-Unsubscribe=One-Click` as `application/x-www-form-
    urlencoded` (also assumed when no type is given) or as a `multipart/form-data` field
    (RFC 8058 section 3.1 allows both; RFC 7578)."""
    if len(body) > MAX_BODY_BYTES:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "application/x-www-form-urlencoded"):
        try:
            fields = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            return False
        return "One-Click" in fields.get("List-Unsubscribe", [])
    if media == "multipart/form-data":
        return _multipart_one_click(content_type, body)
    return False


def _multipart_one_click(content_type: str, body: bytes) -> bool:
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace") + body
    )
    if not message.is_multipart():
        return False
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and payload.strip() == b"One-Click":
                return True
    return False


# ------------------------------------------------------------------------------------- bounces, complaints
def address_failed_for_good(status: str) -> bool:
    """Whether an enhanced status code (`5.1.1`, RFC 3463; a DSN's `Status`, RFC 3464 section
    2.3.4) says the recipient's address or mailbox fails permanently: class 5 with subject 1
    (addressing) but X.1.5/X.1.7/X.1.8, or exactly X.2.1 (mailbox disabled). Anything else,
    unparseable text included, is False."""
    found = _STATUS.match(status.strip())
    if found is None or found.group(1) != "5":
        return False
    subject, detail = int(found.group(2)), int(found.group(3))
    return (subject == 1 and detail not in _NOT_THE_RECIPIENT) or (subject, detail) == (2, 1)


def reply_failed_for_good(reply: str) -> bool:
    """Whether an SMTP reply refusing a recipient (`550 5.1.1 No such user`) says the address
    fails permanently: by its enhanced status code when it has one (RFC 2034), else by the reply
    code 550, 551 or 553 (RFC 5321 section 4.2.3)."""
    found = _SMTP_REPLY.match(reply.strip())
    if found is None:
        return False
    code, enhanced = found.groups()
    return address_failed_for_good(enhanced) if enhanced else code in _ADDRESS_REPLIES


def hard_bounced(bounce: Mapping[str, Any]) -> list[str]:
    """The recipients a DSN (`BounceReport` as stored) reports failed for good
    (`address_failed_for_good` of their `Status`, RFC 3464 section 2.3.4); `Final-Recipient`,
    else `Original-Recipient`."""
    found: list[str] = []
    for recipient in bounce.get("recipients") or ():
        if not isinstance(recipient, Mapping) or not address_failed_for_good(
            str(recipient.get("status") or "")
        ):
            continue
        address = _normal(str(recipient.get("final_recipient") or recipient.get("original_recipient") or ""))
        if address is not None:
            found.append(address)
    return list(dict.fromkeys(found))


def complained(feedback: Mapping[str, Any]) -> list[str]:
    """The recipients an ARF report (`FeedbackReport` as stored) complains for: its
    `Original-Rcpt-To` fields (RFC 5965 section 3.5), else the returned message's `To`."""
    named = [str(a) for a in feedback.get("original_rcpt_to") or ()] or [
        str(a) for a in feedback.get("original_to") or ()
    ]
    return list(dict.fromkeys(a for a in (_normal(x) for x in named) if a is not None))


def record_reports(
    deps: SuppressionDeps, tenant_id: str, email_id: str, item: Mapping[str, Any]
) -> list[str]:
    """List the hard-bounced and complained-of recipients of an inbound email (the match
    function calls this for every `email.received`); the addresses listed now. Idempotent."""
    if item.get("direction") == "outbound":
        return []
    listed: list[str] = []
    bounce, feedback = item.get("bounce"), item.get("feedback")
    for addresses, reason in (
        (hard_bounced(bounce) if isinstance(bounce, Mapping) else [], "hard_bounce"),
        (complained(feedback) if isinstance(feedback, Mapping) else [], "complaint"),
    ):
        for address in addresses:
            if add(deps, tenant_id, address, reason, email_id)[1]:  # type: ignore[arg-type]
                listed.append(address)
    return listed


def record_refusals(
    deps: SuppressionDeps, tenant_id: str, email_id: str, refused: Mapping[str, Any] | None
) -> list[str]:
    """List the recipients an SMTP server refused for good (`{address: "550 5.1.1 ..."}`, as the
    outbox keeps them; `reply_failed_for_good`); 4xx refusals are transient. Idempotent."""
    listed: list[str] = []
    for address, reply in (refused or {}).items():
        normal = _normal(str(address))
        if not reply_failed_for_good(str(reply)) or normal is None:
            continue
        if add(deps, tenant_id, normal, "hard_bounce", email_id)[1]:
            listed.append(normal)
    return listed


# ------------------------------------------------------------------------------------- API
def list_suppressions(
    ctx: TenantContext, deps: SuppressionDeps, *, cursor: str | None, limit: int
) -> Page[Suppression]:
    items, next_cursor = deps.store.page(ctx.tenant_id, cursor=cursor, limit=limit)
    return Page[Suppression](items=[_record(i) for i in items], next_cursor=next_cursor)


def add_manual(ctx: TenantContext, body: SuppressionCreate, deps: SuppressionDeps) -> SuppressionAdded:
    suppression, created = add(deps, ctx.tenant_id, body.address, "manual", None)
    return SuppressionAdded(suppression=suppression, created=created)


def remove(ctx: TenantContext, address: str, deps: SuppressionDeps) -> None:
    """Re-subscribe: NotFound `suppression_not_found` when the address is not listed."""
    normal = _normal(address)
    if normal is None or not deps.store.remove(ctx.tenant_id, normal):
        raise NotFound("the address is not on the suppression list", code="suppression_not_found")
