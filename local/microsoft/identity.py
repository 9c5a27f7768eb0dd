"""The Microsoft identity platform v2.0 endpoints: OpenID metadata, authorize, token, keys.

Sources:
* "OAuth 2.0 authorization code flow" and "OpenID Connect on the Microsoft identity platform"
  (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow, v2-protocols-oidc) [D]:
  parameters, `response_mode`, PKCE (`S256`/`plain`, RFC 7636), `prompt=consent|none|login|
  select_account`, the token response (`token_type, scope, expires_in, ext_expires_in,
  access_token, refresh_token` with `offline_access`, `id_token` with `openid`), single-use codes
  that live about ten minutes, `client_info` (base64url `{"uid","utid"}`, msal asks for it).
* "Refresh tokens in the Microsoft identity platform" [D]: "Refresh tokens replace themselves with
  a fresh token upon every use. The Microsoft identity platform doesn't revoke old refresh tokens
  when used to fetch new access tokens." Lifetime 90 days of inactivity (24 hours for SPAs, not
  modelled). So every refresh returns a new refresh token and the used one stays valid until its
  own inactivity window closes; revocation ends them all.
* AADSTS codes and names from the "Microsoft Entra authentication and authorization error codes"
  reference [D]: 50173 FreshTokenNeeded (grant revoked: "sign out everywhere", admin revocation,
  password change), 700082 ExpiredOrRevokedGrantInactiveToken, 70008 ExpiredOrRevokedGrant,
  65001 DelegationDoesNotExist (consent missing or withdrawn), 65004 UserDeclinedConsent,
  54005 (code already redeemed), 501481 (code_verifier does not match), 700016 (unknown app),
  7000215 (invalid client secret), 7000218 (no client credential), 900144 (missing parameter),
  50011 (redirect URI not registered), 90002 (tenant not found), 70011 (invalid scope).
  Which code answers which case is the double's reading of those names, and the description
  texts are as clients quote them [R]. A PKCE failure does not consume the code [R].
* Access tokens live a random 60-90 minutes [D: "access tokens" doc, default lifetime]; for work
  and school accounts they are JWTs (v1.0 Graph token shape [R]), for personal accounts opaque.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from local.microsoft.errors import IdentityError, SignInPageError
from local.microsoft.ids import Ids
from local.microsoft.keys import KeySet

MSA_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"  # the consumers tenant id [D: v2 OIDC doc]
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
SPECIAL_TENANTS = ("common", "organizations", "consumers")
# Delegated Microsoft Graph permissions the double knows, in the case tokens carry them
# [D: graph permissions reference].
GRAPH_PERMISSIONS = (
    "User.Read",
    "User.ReadBasic.All",
    "Mail.ReadBasic",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Mail.Read.Shared",
    "Mail.ReadWrite.Shared",
    "Mail.Send.Shared",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "Contacts.Read",
    "Contacts.ReadWrite",
    "Calendars.Read",
    "Calendars.ReadWrite",
)
_CANONICAL = {name.lower(): name for name in GRAPH_PERMISSIONS}
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1 / §4.2
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
AUDIENCES = (
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
)


@dataclass
class App:
    """An app registration: a confidential web client."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    name: str
    audience: str
    home_tenant: str
    permissions: list[str] = field(default_factory=lambda: ["User.Read"])  # what `.default` asks for

    def allows(self, user: User) -> bool:
        if self.audience == "PersonalMicrosoftAccount":
            return user.personal
        if self.audience == "AzureADMyOrg":
            return not user.personal and user.tid == self.home_tenant
        if self.audience == "AzureADMultipleOrgs":
            return not user.personal
        return True


@dataclass
class User:
    """A work-or-school account (tid = its tenant) or a personal Microsoft account (tid = MSA_TENANT)."""

    address: str
    name: str
    oid: str
    tid: str
    personal: bool
    tokens_valid_from: datetime  # "revoke sign-in sessions" moves it forward (AADSTS50173 before it)
    denies_consent: bool = False
    session: int = 0  # bumped by each revocation; a refresh token of an older session is dead


@dataclass
class Grant:
    """The delegated permissions one user consented to for one app (an oauth2PermissionGrant)."""

    client_id: str
    oid: str
    scopes: set[str]


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    oid: str
    graph_scopes: frozenset[str]
    oidc_scopes: frozenset[str]
    challenge: str | None
    challenge_method: str
    nonce: str | None
    auth_time: datetime
    expires_at: datetime
    session: int = 0
    used: bool = False


@dataclass
class RefreshToken:
    value: str
    client_id: str
    oid: str
    auth_time: datetime  # when the user signed in
    issued_at: datetime
    last_used: datetime
    session: int  # the user's session generation at sign-in (revocation compares against this)


@dataclass
class AccessToken:
    value: str
    client_id: str
    oid: str
    scopes: frozenset[str]
    issued_at: datetime
    expires_at: datetime

    def valid(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass
class IdentitySettings:
    access_token_seconds: int | None = None  # None: random 60-90 minutes [D]
    code_seconds: int = 600  # "authorization codes are short lived ... about 10 minutes" [D]
    refresh_inactive: timedelta = timedelta(days=90)  # MaxInactiveTime default [D]
    id_token_seconds: int = 3600


@dataclass
class Authorized:
    """The answer to /authorize: a redirect (`location`) or an auto-posting form (`form_post`)."""

    location: str | None = None
    form_post: bytes | None = None


class Identity:
    """Tenants, users, app registrations, grants and every live token."""

    def __init__(self, ids: Ids, keys: KeySet, settings: IdentitySettings | None = None) -> None:
        self.ids = ids
        self.keys = keys
        self.settings = settings or IdentitySettings()
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}  # by lower-case address
        self.tenants: dict[str, set[str]] = {}  # tid -> domains
        self.grants: dict[tuple[str, str], Grant] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.signed_in: str | None = None
        self.default_tenant = ids.guid()

    # ------------------------------------------------------------------ setup

    def register_app(
        self,
        redirect_uris: list[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str = "mailbridge (local)",
        audience: str = "AzureADandPersonalMicrosoftAccount",
        permissions: list[str] | None = None,
    ) -> App:
        if audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {AUDIENCES}")
        app = App(
            client_id=client_id or self.ids.guid(),
            client_secret=client_secret or self.ids.client_secret(),
            redirect_uris=list(redirect_uris),
            name=name,
            audience=audience,
            home_tenant=self.default_tenant,
            permissions=list(permissions or ["User.Read"]),
        )
        self.apps[app.client_id] = app
        return app

    def add_user(self, address: str, name: str, personal: bool, tenant: str | None, now: datetime) -> User:
        tid = MSA_TENANT if personal else (tenant or self.default_tenant)
        self.tenants.setdefault(tid, set()).add(address.rpartition("@")[2].lower())
        user = User(
            address=address,
            name=name,
            oid=("00000000-0000-0000-" + self.ids.guid()[19:]) if personal else self.ids.guid(),
            tid=tid,
            personal=personal,
            tokens_valid_from=now - timedelta(days=365),
        )
        self.users[address.lower()] = user
        if self.signed_in is None:
            self.signed_in = address.lower()
        return user

    def user_by_oid(self, oid: str) -> User | None:
        return next((u for u in self.users.values() if u.oid == oid), None)

    def tenant_id(self, segment: str) -> str | None:
        """The tenant an authority path segment names: a special name, a tenant id, or one of its domains."""
        lowered = segment.lower()
        if lowered in SPECIAL_TENANTS:
            return lowered
        if lowered == MSA_TENANT or lowered in self.tenants:
            return lowered
        return next((tid for tid, domains in self.tenants.items() if lowered in domains), None)

    # ------------------------------------------------------------------ metadata

    def openid_configuration(self, origin: str, segment: str) -> dict[str, Any]:
        """GET /{tenant}/v2.0/.well-known/openid-configuration [D: shape of the live document]."""
        tenant = self.tenant_id(segment)
        if tenant is None:
            raise IdentityError(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        issuer_tenant = {"common": "{tenantid}", "organizations": "{tenantid}", "consumers": MSA_TENANT}.get(
            tenant, tenant
        )
        base = f"{origin}/{segment}"
        host = origin.split("://", 1)[1]
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{origin}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{origin}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": None if tenant in SPECIAL_TENANTS or tenant == MSA_TENANT else "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": host,
            "rbac_url": "https://pas.windows.net",
        }

    def issuer_for(self, origin: str, tid: str) -> str:
        return f"{origin}/{tid}/v2.0"

    # ------------------------------------------------------------------ authorize

    def authorize(self, params: dict[str, str], segment: str, now: datetime) -> Authorized:
        """GET /{tenant}/oauth2/v2.0/authorize: approve at once as the signed-in user."""
        tenant = self.tenant_id(segment)
        if tenant is None:
            raise SignInPageError(400, 90002, f"Tenant '{segment}' not found.")
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise SignInPageError(
                400,
                700016,
                f"Application with identifier '{params.get('client_id', '')}' was not found in the "
                "directory. "
                "This can happen if the application has not been installed by the administrator of "
                "the tenant.",
            )
        redirect_uri = params.get("redirect_uri") or (
            app.redirect_uris[0] if len(app.redirect_uris) == 1 else ""
        )
        if redirect_uri not in app.redirect_uris:
            raise SignInPageError(
                400,
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                "redirect URIs "
                f"configured for the application '{app.client_id}'.",
            )
        mode = params.get("response_mode") or "query"
        state = params.get("state")

        def fail(error: str, code: int, description: str, subcode: str | None = None) -> Authorized:
            values = {
                "error": error,
                "error_description": f"AADSTS{code}: {description}",
                "error_subcode": subcode,
                "error_uri": f"https://login.microsoftonline.com/error?code={code}",
                "state": state,
            }
            return _answer(redirect_uri, mode, values)

        response_type = params.get("response_type", "")
        if set(response_type.split()) - {"code", "id_token"} or "code" not in response_type.split():
            return fail(
                "unsupported_response_type", 70005, f"The response_type '{response_type}' is not supported."
            )
        if mode not in ("query", "fragment", "form_post"):
            return fail("invalid_request", 70007, f"The response_mode '{mode}' is not supported.")
        try:
            graph_scopes, oidc_scopes = self.parse_scopes(params.get("scope", ""), app)
        except IdentityError as error:
            return fail(error.error, error.aadsts, error.description)
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if method and not challenge:
            return fail("invalid_request", 50147, "The code_challenge parameter is missing.")
        if challenge is not None:
            method = method or "plain"
            if method not in ("S256", "plain"):
                return fail("invalid_request", 501491, f"Invalid code_challenge_method: {method}")
            if not _PKCE_VALUE.fullmatch(challenge):
                return fail("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
        user = self._signing_in(params.get("login_hint"))
        if not self._tenant_allows(tenant, user) or not app.allows(user):
            return fail(
                "invalid_request",
                50020,
                f"User account '{{EmailHidden}}' from identity provider does not exist in tenant '{segment}' "
                "and cannot access the application in that tenant.",
            )
        prompts = params.get("prompt", "").split()
        grant = self.grants.get((app.client_id, user.oid))
        consented = grant.scopes if grant else set()
        if "none" in prompts and not graph_scopes <= consented:
            return fail(
                "consent_required",
                65001,
                "The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}' "
                f"named '{app.name}'. Send an interactive authorization request for this user and resource.",
            )
        if user.denies_consent:
            return fail(
                "access_denied", 65004, "User declined to consent to access the app.", subcode="cancel"
            )
        # The consent screen (shown for prompt=consent or anything not yet consented) approves at once.
        grant = self.grants.setdefault((app.client_id, user.oid), Grant(app.client_id, user.oid, set()))
        grant.scopes |= graph_scopes
        # Scopes are additive: the code carries every Graph scope the user consented to for the
        # app so far, not only those asked now, and the tokens redeemed from it carry them too
        # [R: Microsoft Q&A 78683, "additive scopes", confirmed there by the product team].
        code = self.ids.code(user.personal)
        self.codes[code] = AuthorizationCode(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            oid=user.oid,
            graph_scopes=frozenset(grant.scopes),
            oidc_scopes=frozenset(oidc_scopes),
            challenge=challenge,
            challenge_method=method or "plain",
            nonce=params.get("nonce"),
            auth_time=now,
            expires_at=now + timedelta(seconds=self.settings.code_seconds),
            session=user.session,
        )
        values = {"code": code, "state": state, "session_state": self.ids.guid()}
        if params.get("client_info") == "1":
            values["client_info"] = _client_info(user)
        return _answer(redirect_uri, mode, values)

    def _signing_in(self, login_hint: str | None) -> User:
        if login_hint and login_hint.lower() in self.users:
            return self.users[login_hint.lower()]
        if self.signed_in is None or self.signed_in not in self.users:
            raise SignInPageError(400, 50058, "A silent sign-in request was sent but no user is signed in.")
        return self.users[self.signed_in]

    @staticmethod
    def _tenant_allows(tenant: str, user: User) -> bool:
        if tenant == "common":
            return True
        if tenant == "consumers":
            return user.personal
        if tenant == "organizations":
            return not user.personal
        return tenant == user.tid

    def parse_scopes(self, raw: str, app: App) -> tuple[set[str], set[str]]:
        """Split `scope` into Graph permissions (canonical names) and OpenID scopes.

        Graph permissions may be short (`Mail.Read`) or qualified (`https://graph.microsoft.com/Mail.Read`);
        `.default` means what the app registration lists. Other resources are not served by the double.
        """
        graph: set[str] = set()
        oidc: set[str] = set()
        for item in raw.split():
            lowered = item.lower()
            if lowered in OIDC_SCOPES:
                oidc.add(lowered)
                continue
            name = item[len(GRAPH_RESOURCE) :] if lowered.startswith(GRAPH_RESOURCE) else item
            if name.lower() == ".default":
                graph |= set(app.permissions)
                continue
            if "://" in name or name.lower().startswith("api://"):
                raise IdentityError(
                    400,
                    "invalid_resource",
                    500011,
                    f"The resource principal named {item} was not found in the tenant.",
                )
            canonical = _CANONICAL.get(name.lower())
            if canonical is None:
                raise IdentityError(
                    400,
                    "invalid_client",
                    650053,
                    f"The application '{app.name}' asked for scope '{name}' that doesn't exist on "
                    f"the resource '{GRAPH_APP_ID}'.",
                )
            graph.add(canonical)
        if not graph and not oidc:
            raise IdentityError(
                400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' isn't valid."
            )
        return graph, oidc

    # ------------------------------------------------------------------ token

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None, origin: str, now: datetime
    ) -> dict[str, Any]:
        """POST /{tenant}/oauth2/v2.0/token for `authorization_code` and `refresh_token` grants."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise IdentityError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant_type not in ("authorization_code", "refresh_token"):
            raise IdentityError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        app = self._authenticate(form, basic)
        if grant_type == "authorization_code":
            return self._redeem_code(app, form, origin, now)
        return self._refresh(app, form, origin, now)

    def _authenticate(self, form: dict[str, str], basic: tuple[str, str] | None) -> App:
        client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret"))
        if not client_id:
            raise IdentityError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        app = self.apps.get(client_id)
        if app is None:
            raise IdentityError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if secret is None:
            raise IdentityError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            raise IdentityError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, "
                f"not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        return app

    def _redeem_code(self, app: App, form: dict[str, str], origin: str, now: datetime) -> dict[str, Any]:
        value = form.get("code")
        if not value:
            raise IdentityError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'code'.",
            )
        code = self.codes.get(value)
        if code is None or code.client_id != app.client_id:
            raise IdentityError(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if code.used:
            raise IdentityError(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                "code or use an existing refresh token.",
            )
        if now >= code.expires_at:
            raise IdentityError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. "
                "Send a new interactive authorization request for this user and resource.",
            )
        if form.get("redirect_uri") != code.redirect_uri:
            raise IdentityError(
                400,
                "invalid_grant",
                500112,
                f"The reply address '{form.get('redirect_uri')}' does not match the reply address "
                f"'{code.redirect_uri}' "
                "provided when requesting Authorization code.",
            )
        verifier = form.get("code_verifier")
        if code.challenge is not None:
            if not verifier:
                raise IdentityError(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
            if not _PKCE_VALUE.fullmatch(verifier) or not hmac.compare_digest(
                _challenge(verifier, code.challenge_method), code.challenge
            ):
                # The code is not consumed by a failed PKCE check [R].
                raise IdentityError(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
        code.used = True
        user = self.user_by_oid(code.oid)
        assert user is not None
        requested, oidc = self._scope_for_redemption(form, code, app)
        return self._issue(
            app, user, requested, oidc, (code.auth_time, code.session), code.nonce, form, origin, now
        )

    def _scope_for_redemption(
        self, form: dict[str, str], code: AuthorizationCode, app: App
    ) -> tuple[frozenset[str], frozenset[str]]:
        raw = form.get("scope")
        if not raw:
            return code.graph_scopes, code.oidc_scopes
        _, oidc = self.parse_scopes(raw, app)
        # Additive scopes (see `authorize`): the token gets what is in the code.
        return code.graph_scopes, frozenset(oidc & code.oidc_scopes or code.oidc_scopes)

    def _refresh(self, app: App, form: dict[str, str], origin: str, now: datetime) -> dict[str, Any]:
        value = form.get("refresh_token")
        if not value:
            raise IdentityError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'refresh_token'.",
            )
        token = self.refresh_tokens.get(value)
        if token is None or token.client_id != app.client_id:
            raise IdentityError(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        user = self.user_by_oid(token.oid)
        assert user is not None
        if token.session < user.session:
            raise IdentityError(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have "
                "changed or reset their password. The grant was issued on "
                f"'{_stamp(token.auth_time)}' and the TokensValidFrom "
                "date (before which tokens are not valid) for this user is "
                f"'{_stamp(user.tokens_valid_from)}'.",
                suberror="bad_token",
            )
        if now - token.last_used > self.settings.refresh_inactive:
            days = self.settings.refresh_inactive.days
            raise IdentityError(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on "
                f"{_stamp(token.issued_at)} "
                f"and was inactive for {days}.00:00:00.",
                suberror="bad_token",
            )
        grant = self.grants.get((app.client_id, user.oid))
        requested = form.get("scope", "")
        graph, oidc = (
            self.parse_scopes(requested, app)
            if requested
            else (set(grant.scopes if grant else ()), {"openid"})
        )
        if grant is None or not graph <= grant.scopes:
            raise IdentityError(
                400,
                "invalid_grant",
                65001,
                "The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}' named "
                f"'{app.name}'. Send an interactive authorization request for this user and resource.",
                suberror="consent_required",
            )
        token.last_used = now
        oidc.add("offline_access")  # a refresh token was in hand, so one comes back (rotation)
        return self._issue(
            app,
            user,
            frozenset(grant.scopes),  # additive: every consented Graph scope (see `authorize`)
            frozenset(oidc),
            (token.auth_time, token.session),
            None,
            form,
            origin,
            now,
        )

    def _issue(
        self,
        app: App,
        user: User,
        graph: frozenset[str],
        oidc: frozenset[str],
        signed_in: tuple[datetime, int],
        nonce: str | None,
        form: dict[str, str],
        origin: str,
        now: datetime,
    ) -> dict[str, Any]:
        seconds = self.settings.access_token_seconds or self.ids.seconds_between(3600, 5400)
        access = AccessToken(
            value="",
            client_id=app.client_id,
            oid=user.oid,
            scopes=graph,
            issued_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
        access.value = self._access_token_value(app, user, access)
        self.access_tokens[access.value] = access
        scope = sorted(graph, key=str.lower) + sorted(oidc - {"offline_access"})
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(scope),
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": access.value,
        }
        if "offline_access" in oidc:
            refresh = RefreshToken(
                value=self.ids.refresh_token(user.personal),
                client_id=app.client_id,
                oid=user.oid,
                auth_time=signed_in[0],
                issued_at=now,
                last_used=now,
                session=signed_in[1],
            )
            self.refresh_tokens[refresh.value] = refresh
            body["refresh_token"] = refresh.value
            body["refresh_token_expires_in"] = int(self.settings.refresh_inactive.total_seconds())
        if "openid" in oidc:
            body["id_token"] = self.id_token(app, user, oidc, nonce, origin, now)
        if form.get("client_info") == "1":
            body["client_info"] = _client_info(user)
        return body

    def _access_token_value(self, app: App, user: User, access: AccessToken) -> str:
        if user.personal:
            return self.ids.opaque_access_token()
        iat = int(access.issued_at.timestamp())
        claims = {
            "aud": GRAPH_APP_ID,
            "iss": f"https://sts.windows.net/{user.tid}/",
            "iat": iat,
            "nbf": iat,
            "exp": int(access.expires_at.timestamp()),
            "app_displayname": app.name,
            "appid": app.client_id,
            "name": user.name,
            "oid": user.oid,
            "scp": " ".join(sorted(access.scopes, key=str.lower)),
            "tid": user.tid,
            "unique_name": user.address,
            "upn": user.address,
            "uti": self.ids.token(22),
            "ver": "1.0",
        }
        # Graph's own tokens carry a `nonce` header, which makes them unverifiable by anyone but Graph [R].
        return self.keys.sign(claims, headers={"nonce": self.ids.token(43)})

    def id_token(
        self, app: App, user: User, oidc: frozenset[str], nonce: str | None, origin: str, now: datetime
    ) -> str:
        iat = int(now.timestamp())
        sub = base64.urlsafe_b64encode(
            hashlib.sha256(f"{user.oid}/{app.client_id}".encode()).digest()
        ).decode()[:43]
        claims: dict[str, Any] = {
            "aud": app.client_id,
            "iss": self.issuer_for(origin, user.tid),
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.settings.id_token_seconds,
            "sub": sub,
            "tid": user.tid,
            "ver": "2.0",
            "uti": self.ids.token(22),
            "rh": "0.A" + self.ids.token(40) + ".",
        }
        if "profile" in oidc:
            claims |= {"name": user.name, "oid": user.oid, "preferred_username": user.address}
        if "email" in oidc:
            claims["email"] = user.address
        if nonce:
            claims["nonce"] = nonce
        return self.keys.sign(claims)

    # ------------------------------------------------------------------ revocation and checks

    def revoke_sessions(self, address: str, now: datetime) -> None:
        """revokeSignInSessions / an admin revocation: every refresh token issued so far dies (50173)."""
        user = self.users[address.lower()]
        user.tokens_valid_from = now
        user.session += 1

    def withdraw_consent(self, address: str, client_id: str | None = None) -> int:
        """The user removes the app from myapps (the oauth2PermissionGrant is deleted): refresh -> 65001."""
        oid = self.users[address.lower()].oid
        keys = [k for k in self.grants if k[1] == oid and (client_id is None or k[0] == client_id)]
        for key in keys:
            del self.grants[key]
        return len(keys)

    def expire_access_tokens(self, address: str, now: datetime) -> int:
        oid = self.users[address.lower()].oid
        count = 0
        for token in self.access_tokens.values():
            if token.oid == oid and token.valid(now):
                token.expires_at = now
                count += 1
        return count

    def bearer(self, value: str, now: datetime) -> AccessToken | None:
        token = self.access_tokens.get(value)
        return token if token is not None and token.valid(now) else None


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _client_info(user: User) -> str:
    raw = json.dumps({"uid": user.oid, "utid": user.tid}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _answer(redirect_uri: str, mode: str, values: dict[str, str | None]) -> Authorized:
    present = {k: v for k, v in values.items() if v is not None}
    if mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{k}" value="{_html_attr(v)}" />' for k, v in present.items()
        )
        page = (
            f'<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" '
            f'action="{_html_attr(redirect_uri)}">{inputs}<noscript><p>Script is disabled. Click '
            "Submit to continue.</p>"
            '<input type="submit" value="Submit" /></noscript></form>'
            "<script>document.forms[0].submit();</script></body></html>"
        )
        return Authorized(form_post=page.encode())
    separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return Authorized(location=f"{redirect_uri}{separator}{urlencode(present)}")


def _html_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def is_guid(value: str) -> bool:
    return _GUID.fullmatch(value) is not None
