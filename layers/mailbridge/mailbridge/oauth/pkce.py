"""PKCE (RFC 7636): a high-entropy verifier kept server-side and its S256 challenge.

Written here rather than taken from an OAuth library: it is two lines of the RFC, and the
providers differ in everything around it (Google over plain httpx, Microsoft through msal).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

VERIFIER_BYTES = 48  # 64 base64url characters; the RFC allows 43 to 128 (section 4.1)


def new_verifier() -> str:
    """A code_verifier: base64url of 48 random bytes (RFC 7636 section 4.1 recommends 32 or more)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(VERIFIER_BYTES)).rstrip(b"=").decode("ascii")


def s256_challenge(verifier: str) -> str:
    """code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state() -> str:
    """An unguessable, single-use `state` (RFC 6749 section 10.12): 256 random bits, base64url."""
    return secrets.token_urlsafe(32)
