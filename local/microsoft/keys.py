"""Token-signing keys (published as a JWKS) and the TLS identity of the double's port.

Signing: the Microsoft identity platform signs id tokens (and work-or-school access tokens) with
RS256 and publishes the public keys at the `jwks_uri` of its OpenID configuration
(`/{tenant}/discovery/v2.0/keys`) as `{"keys": [{kty, use, kid, x5t, n, e, x5c, issuer}]}`
[D: learn.microsoft.com identity-platform "access tokens: validate the signature" / OpenID Connect
doc; the `issuer` member on each key is what the live v2 keys document carries [R]].
`kid` and `x5t` are the base64url SHA-1 thumbprint of the certificate [R].

TLS: a throw-away CA and a server certificate for 127.0.0.1/localhost (ECDSA P-256, fast to
make); the CA is written to a PEM file for clients to trust.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@functools.cache
def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    """Key number `index`, generated once per process (RSA generation is the slow part of a test)."""
    del index
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    cert_der: bytes

    @classmethod
    def create(cls, index: int, now: datetime) -> SigningKey:
        key = _rsa_key(index)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * 5))
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        kid = _b64url(hashlib.sha1(der).digest())  # noqa: S324 - a thumbprint, as x5t is defined
        return cls(kid=kid, private_key=key, cert_der=der)

    def jwk(self, issuer: str) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": public["n"],
            "e": public["e"],
            "x5c": [base64.b64encode(self.cert_der).decode("ascii")],
            "issuer": issuer,
        }

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            claims,
            self.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.kid, "x5t": self.kid, **(headers or {})},
        )


class KeySet:
    """Two published keys; the first one signs. `rotate()` retires it as Microsoft rolls keys."""

    def __init__(self, now: datetime) -> None:
        self._lock = threading.Lock()
        self._next_index = 2
        self._keys = [SigningKey.create(0, now), SigningKey.create(1, now)]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[0]

    def rotate(self, now: datetime) -> None:
        with self._lock:
            self._keys = [self._keys[1], SigningKey.create(self._next_index, now)]
            self._next_index += 1

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return self.current.sign(claims, headers)

    def jwks(self, issuer: str) -> dict[str, Any]:
        with self._lock:
            return {"keys": [key.jwk(issuer) for key in self._keys]}


class TlsIdentity:
    """A CA (PEM file at `ca_file`) and a server certificate for the loopback names."""

    def __init__(self, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        start = datetime.now(UTC) - timedelta(days=1)  # wall-clock time: TLS clients check it
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbridge local Microsoft double CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self._dir = tempfile.TemporaryDirectory(prefix="ms-double-tls-")
        folder = Path(self._dir.name)
        self.ca_file = str(folder / "ca.pem")
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        Path(self.ca_file).write_bytes(ca_pem)
        # The usual public roots plus this CA: for REQUESTS_CA_BUNDLE / SSL_CERT_FILE in a process
        # that talks to the double and to real hosts (requests lets REQUESTS_CA_BUNDLE override a
        # session's `verify`, so msal's `verify=` alone is not enough where that variable is set).
        self.ca_bundle = str(folder / "bundle.pem")
        Path(self.ca_bundle).write_bytes(_system_roots() + b"\n" + ca_pem)
        cert_file, key_file = folder / "server.pem", folder / "server.key"
        cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(str(cert_file), str(key_file))

    def close(self) -> None:
        self._dir.cleanup()


def _system_roots() -> bytes:
    for candidate in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile, _certifi()):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def _certifi() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def stranger_key(now: datetime) -> SigningKey:
    """A key the double never publishes: what a forger signs with."""
    return SigningKey.create(-1, now)
