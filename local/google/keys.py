"""The double's RS256 signing keys and the two ways Google publishes its public keys.

Google signs its ID tokens and Pub/Sub push tokens with rotating RSA keys and publishes them at
``https://www.googleapis.com/oauth2/v1/certs`` (``{kid: PEM X.509 certificate}``) and
``https://www.googleapis.com/oauth2/v3/certs`` (a JWKS, RFC 7517) [D: cloud.google.com/pubsub/docs/
authenticate-push-subscriptions points verifiers at these]. google-auth's verifier fetches either
shape, so serving both lets the product's verifier run with only the certs URL changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# Google answers its certs URLs with a cache lifetime of several hours [R].
CERTS_CACHE_CONTROL = "public, max-age=21600, must-revalidate, no-transform"


@functools.cache
def _private_key(index: int) -> rsa.RSAPrivateKey:
    """Key number `index`, generated once per process (RSA generation is the slow part of a test)."""
    del index
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    cert_pem: str

    @classmethod
    def create(cls, index: int, now: datetime) -> SigningKey:
        key = _private_key(index)
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = hashlib.sha1(der).hexdigest()  # noqa: S324 - an identifier, 40 hex digits like Google's kids
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.google.com")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(int(kid[:16], 16))
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=14))
            .sign(key, hashes.SHA256())
        )
        return cls(kid=kid, private_key=key, cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode())

    def jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": jwk["n"], "e": jwk["e"]}

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid})


class KeySet:
    """Two published keys (Google serves the current and the next one); the first one signs."""

    def __init__(self, now: datetime) -> None:
        self._lock = threading.Lock()
        self._next_index = 2
        self._keys = [SigningKey.create(0, now), SigningKey.create(1, now)]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[0]

    def rotate(self, now: datetime) -> None:
        """Retire the signing key: the next one signs, and a fresh one is published beside it."""
        with self._lock:
            self._keys = [self._keys[1], SigningKey.create(self._next_index, now)]
            self._next_index += 1

    def sign(self, claims: dict[str, Any]) -> str:
        return self.current.sign(claims)

    def certs_v1(self) -> dict[str, str]:
        with self._lock:
            return {key.kid: key.cert_pem for key in self._keys}

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [key.jwk() for key in self._keys]}


def stranger_key(now: datetime) -> SigningKey:
    """A key the double never publishes: what a forger signs with."""
    return SigningKey.create(-1, now)
