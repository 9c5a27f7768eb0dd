"""KMS envelope encryption for credentials (IMAP passwords, OAuth refresh tokens).

A fresh AES-256 data key per secret comes from KMS GenerateDataKey under an encryption context
(e.g. {tenant_id, account_id}); the context is also the AES-GCM associated data, so a blob copied
to another account or tenant fails to decrypt both at KMS and locally.

Stored envelopes must keep opening across releases, so the format is fixed: the associated data
is the context as canonical JSON (sorted keys, no spaces), the nonce is 96 bits (NIST SP 800-38D
section 8.2), and the fields are base64 (`encrypted_key` is KMS's CiphertextBlob).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import ConfigDict

from mailbridge import aws
from mailbridge.errors import MailbridgeError
from mailbridge.models.base import Model

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


class DecryptionFailed(MailbridgeError):
    code = "decryption_failed"


# KMS refuses the data key: another context (InvalidCiphertextException), another KMS key
# (IncorrectKeyException), or a key policy condition on the context (AccessDeniedException).
# Any other KMS error (throttling, an outage) is not about the secret and propagates as it is.
_REFUSED = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"})
_UNDECRYPTABLE = "the secret cannot be decrypted under this context"


class Envelope(Model):
    model_config = ConfigDict(frozen=True)

    v: int = 1
    encrypted_key: str
    nonce: str
    ciphertext: str


def _aad(context: Mapping[str, str]) -> bytes:
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()


def encrypt(
    plaintext: bytes, context: Mapping[str, str], *, key_id: str, kms: KMSClient | None = None
) -> Envelope:
    """Seal `plaintext` with a fresh AES-256 data key from KMS GenerateDataKey under `context`;
    KMS errors propagate."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kms = kms or aws.kms()
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context))
    nonce = os.urandom(12)
    sealed = AESGCM(data_key["Plaintext"]).encrypt(nonce, plaintext, _aad(context))
    return Envelope(
        encrypted_key=base64.b64encode(data_key["CiphertextBlob"]).decode(),
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(sealed).decode(),
    )


def decrypt(envelope: Envelope, context: Mapping[str, str], *, kms: KMSClient | None = None) -> bytes:
    """The plaintext sealed by `encrypt` under the same context. `DecryptionFailed` when KMS refuses
    the data key (see `_REFUSED`) or the AES-GCM tag does not verify; other KMS errors propagate."""
    from botocore.exceptions import ClientError
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kms = kms or aws.kms()
    try:
        key = kms.decrypt(
            CiphertextBlob=base64.b64decode(envelope.encrypted_key), EncryptionContext=dict(context)
        )["Plaintext"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _REFUSED:
            raise DecryptionFailed(_UNDECRYPTABLE) from exc
        raise
    try:
        return AESGCM(key).decrypt(
            base64.b64decode(envelope.nonce), base64.b64decode(envelope.ciphertext), _aad(context)
        )
    except InvalidTag as exc:
        raise DecryptionFailed(_UNDECRYPTABLE) from exc
