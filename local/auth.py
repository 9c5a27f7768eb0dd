"""A local JWT issuer and API Gateway's JWT authorizer checks.

The runner makes an RSA key at start (RS256, with a `kid`) and writes it to `.local/dev-issuer.json`
(gitignored), so `python -m local.token` can sign tokens for the running runner. `LOCAL_ISSUER_FILE`
names another file (for the runner and the token command alike): a second `python -m local`, such
as the one an e2e test starts, then leaves the file of the developer's `make run` alone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.functions import ROOT

AUDIENCE = "mailbridge-local"
ISSUER_FILE = Path(os.environ.get("LOCAL_ISSUER_FILE") or ROOT / ".local" / "dev-issuer.json")
ISSUER_PATH = "/_local/issuer"


class NoIssuerError(RuntimeError):
    """No runner has written its issuer file yet."""


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str
    kid: str
    private_pem: str

    @classmethod
    def create(cls, base_url: str, audience: str = AUDIENCE) -> Issuer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return cls(
            issuer=base_url + ISSUER_PATH, audience=audience, kid=uuid.uuid4().hex[:16], private_pem=pem
        )

    def save(self, path: Path = ISSUER_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__, indent=2), encoding="utf-8")
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path = ISSUER_FILE) -> Issuer:
        if not path.exists():
            raise NoIssuerError(f"{path} not found: start the local runner first (make run)")
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def token(self, tenant: str, role: str, sub: str = "local-user", ttl: int = 3600, **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "sub": sub,
            "tenant_id": tenant,
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl,
            "token_use": "id",
            **extra,
        }
        return jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": self.kid})

    def public_jwk(self) -> dict[str, Any]:
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        assert isinstance(jwk, dict)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def verify(self, token: str, issuer: str, audience: tuple[str, ...]) -> dict[str, Any]:
        """Check as API Gateway does (kid, signature, iss, aud, exp, nbf); raises jwt.PyJWTError."""
        if jwt.get_unverified_header(token).get("kid") != self.kid:
            raise jwt.InvalidTokenError("unknown kid")
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        claims = jwt.decode(
            token,
            key.public_key(),
            algorithms=["RS256"],
            issuer=issuer,
            audience=list(audience) or None,
            options={"require": ["exp", "iss"], "verify_aud": bool(audience)},
        )
        assert isinstance(claims, dict)
        return claims
