"""OAuth 2.0 connections of mailboxes (and, later, CRMs): authorization code flow with PKCE and a
single-use state, token exchange, sealed refresh tokens, cached access tokens, revocation.

`providers.py` is the registry every provider plugs into (authorize URL, code exchange, refresh,
revoke, scopes, account kind); `service.py` runs the start/callback flow for any of them;
`tokens.access_token(account)` is what adapters call for a bearer token.
"""
