"""Every pattern that guards an identifier matches the whole value: `$` in `re.match` also
matches before a trailing newline, so "acme\\n" or "ct_...\\n" used to pass and reach keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mailbridge import emails
from mailbridge.api.accounts import _valid as valid_account_id
from mailbridge.crm import links, service
from mailbridge.crm.links import LinkCreate, LinkDeps
from mailbridge.errors import Forbidden, NotFound
from mailbridge.tenancy import TenantContext, tenant_from_claims

CTX = tenant_from_claims({"sub": "u1", "tenant_id": "acme", "role": "owner"})
HEX26 = "0" * 26


class Untouchable:
    """A store that fails the test if anything is asked of it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a store was reached ({name}) with an identifier that is not valid")


STORE: Any = Untouchable()
LINK_DEPS = LinkDeps(links=STORE, emails=STORE, crm=STORE, features=STORE)


@pytest.mark.parametrize("tenant", ["acme\n", "acme\r\n", "acme\n\n", "\nacme", "a" * 65])
def test_a_tenant_claim_must_be_the_whole_identifier(tenant: str) -> None:
    with pytest.raises(Forbidden) as raised:
        tenant_from_claims({"sub": "u1", "tenant_id": tenant, "role": "member"})
    assert raised.value.code == "no_tenant"


def test_the_longest_tenant_id_is_accepted() -> None:
    assert tenant_from_claims({"sub": "u1", "tenant_id": "a" * 64, "role": "member"}).tenant_id == "a" * 64


@pytest.mark.parametrize("subject", ["u1\n", "u\x001", "", "u" * 257])
def test_a_subject_with_control_characters_is_refused(subject: str) -> None:
    with pytest.raises(Forbidden) as raised:
        tenant_from_claims({"sub": subject, "tenant_id": "acme", "role": "member"})
    assert raised.value.code in {"no_subject"}


Lookup = Callable[[TenantContext, str], object]

LOOKUPS: dict[str, tuple[Lookup, str]] = {
    "contact": (lambda ctx, i: service.get_contact(ctx, i, STORE), f"ct_{HEX26}"),
    "company": (lambda ctx, i: service.get_company(ctx, i, STORE), f"co_{HEX26}"),
    "deal": (lambda ctx, i: service.get_deal(ctx, i, STORE), f"dl_{HEX26}"),
    "campaign": (lambda ctx, i: service.get_campaign(ctx, i, STORE), f"cp_{HEX26}"),
    "email": (lambda ctx, i: emails.get_email(ctx, i, STORE, STORE), f"em_{HEX26}"),
    "thread": (lambda ctx, i: emails.get_thread(ctx, i, STORE), f"th_{'0' * 24}"),
    "email links": (lambda ctx, i: links.list_links(ctx, i, LINK_DEPS), f"em_{HEX26}"),
    "account": (lambda _, i: valid_account_id(i), f"acc_{'0' * 20}"),
}


@pytest.mark.parametrize("suffix", ["\n", "\r\n"])
@pytest.mark.parametrize("kind", sorted(LOOKUPS))
def test_a_path_id_with_a_trailing_line_break_is_not_found_before_any_read(kind: str, suffix: str) -> None:
    lookup, valid = LOOKUPS[kind]
    with pytest.raises(NotFound):
        lookup(CTX, valid + suffix)


@pytest.mark.parametrize("kind", ["contact", "company", "deal", "campaign"])
def test_a_link_to_a_record_id_with_a_line_break_is_not_found(kind: str) -> None:
    # Given an email that exists
    class Emails:
        def get_email(self, tenant_id: str, email_id: str) -> dict[str, object]:
            return {"email_id": email_id, "date": "2026-01-01T00:00:00+00:00"}

    deps = LinkDeps(links=STORE, emails=Emails(), crm=STORE, features=STORE)  # type: ignore[arg-type]
    record_id = LOOKUPS[kind][1] + "\n"
    body = LinkCreate.model_construct(kind=kind, record_id=record_id)  # type: ignore[arg-type]
    # When it is linked to a record id with a trailing line break
    with pytest.raises(NotFound) as raised:
        links.create_link(CTX, f"em_{HEX26}", body, deps)
    # Then the record is not found, and no store was asked
    assert raised.value.code == f"{kind}_not_found"
