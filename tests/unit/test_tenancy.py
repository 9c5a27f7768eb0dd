from __future__ import annotations

import pytest

from mailbridge.errors import Forbidden
from mailbridge.tenancy import Role, tenant_from_claims

# What the API answers (403, in `error.message`) for each unusable claim.
MESSAGES = {
    "no_tenant": "the token carries no valid tenant_id claim",
    "no_role": "the token carries no valid role claim",
    "no_subject": "the token carries no valid subject",
}


def test_claims_from_external_issuer_give_the_context() -> None:
    ctx = tenant_from_claims({"sub": "u1", "tenant_id": "acme", "role": "admin"})
    assert (ctx.tenant_id, ctx.role, ctx.subject) == ("acme", Role.ADMIN, "u1")


def test_cognito_custom_attribute_claims_are_accepted() -> None:
    ctx = tenant_from_claims({"sub": "u1", "custom:tenant_id": "acme", "custom:role": "viewer"})
    assert ctx.tenant_id == "acme"
    assert ctx.role is Role.VIEWER


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"sub": "u", "role": "admin"}, "no_tenant"),
        ({"sub": "u", "tenant_id": "../other", "role": "admin"}, "no_tenant"),
        ({"sub": "u", "tenant_id": "TENANT#x", "role": "admin"}, "no_tenant"),
        ({"sub": "u", "tenant_id": "acme", "role": "root"}, "no_role"),
        ({"sub": "u", "tenant_id": "acme"}, "no_role"),
        ({"tenant_id": "acme", "role": "admin"}, "no_subject"),
        (None, "no_tenant"),
        # Present but empty, or not a string: as unusable as a missing claim.
        ({"sub": "u", "tenant_id": "", "role": "admin"}, "no_tenant"),
        ({"sub": "u", "tenant_id": ["acme"], "role": "admin"}, "no_tenant"),
        ({"sub": "u", "tenant_id": 42, "role": "admin"}, "no_tenant"),
        ({"sub": "u", "tenant_id": "acme", "role": ""}, "no_role"),
        ({"sub": "u", "tenant_id": "acme", "role": ["admin"]}, "no_role"),
        ({"sub": "", "tenant_id": "acme", "role": "admin"}, "no_subject"),
        ({"sub": 7, "tenant_id": "acme", "role": "admin"}, "no_subject"),
    ],
)
def test_unusable_claims_are_forbidden(claims: dict[str, object] | None, code: str) -> None:
    # Given a verified token whose claims cannot name the caller
    # When the context is built, Then it is refused with the code and the message the API answers
    with pytest.raises(Forbidden) as raised:
        tenant_from_claims(claims)
    assert (raised.value.code, raised.value.message) == (code, MESSAGES[code])


@pytest.mark.parametrize(
    ("role", "minimum", "allowed"),
    [
        (Role.OWNER, Role.ADMIN, True),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.MEMBER, Role.ADMIN, False),
        (Role.VIEWER, Role.MEMBER, False),
        (Role.VIEWER, Role.VIEWER, True),
    ],
)
def test_role_hierarchy(role: Role, minimum: Role, allowed: bool) -> None:
    ctx = tenant_from_claims({"sub": "u", "tenant_id": "acme", "role": role.value})
    if allowed:
        ctx.require(minimum)
    else:
        with pytest.raises(Forbidden):
            ctx.require(minimum)
