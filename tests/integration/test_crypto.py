"""Envelope encryption of credentials: KMS data keys bound to the encryption context
{tenant_id, account_id}, AES-GCM with the context as associated data, and a stored format that
keeps opening across releases. moto plays KMS; botocore's Stubber answers where a test needs a
fixed data key or a KMS error moto cannot produce, and checks what each KMS request carries."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailbridge import crypto
from tests.fixtures.aws import Stack

# The order of mailbridge.accounts.credentials_context (not sorted: the associated data sorts it).
CONTEXT = {"tenant_id": "acme", "account_id": "acc_0123456789abcdef0123"}
OTHER_ACCOUNT = {"tenant_id": "acme", "account_id": "acc_99999999999999999999"}
OTHER_TENANT = {"tenant_id": "globex", "account_id": "acc_0123456789abcdef0123"}
AAD = b'{"account_id":"acc_0123456789abcdef0123","tenant_id":"acme"}'
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0f3c7a52-5d1e-4c1b-9d87-3b2f3f0e6a11"
DATA_KEY = bytes(range(32))
WRAPPED_KEY = b"kms-wrapped-data-key-of-acc_0123"
SECRET = b'{"imap_password": "correct horse battery staple", "smtp_password": null}'
# An envelope as encrypt() stores it (format v1, sealed with DATA_KEY): it must open in every
# later release, or every stored credential stops working on deploy.
STORED = crypto.Envelope(
    encrypted_key="a21zLXdyYXBwZWQtZGF0YS1rZXktb2YtYWNjXzAxMjM=",
    nonce="AAECAwQFBgcICQoL",
    ciphertext=(
        "PCC/dqSVnWvsMuT83pscT7n2pVefCS0ZWxPF7XIbc9chcs+I26Rg4VTXC4z4600awnlC/jei04VP9llqb4yHitIG5hSm"
        "vUocpHEEiHNSmu8FmD1Lg7Y7AA=="
    ),
)


@pytest.fixture
def stubbed_kms() -> Iterator[tuple[Any, Stubber]]:
    kms = boto3.client("kms", region_name="us-east-1")
    with Stubber(kms) as stub:
        yield kms, stub
        stub.assert_no_pending_responses()


def test_a_secret_round_trips_under_its_context(stack: Stack) -> None:
    # Given the template's data key
    key_id = stack.deployed.keys["DataKey"]
    # When a password is sealed
    envelope = crypto.encrypt(b"hunter2-imap-password", CONTEXT, key_id=key_id, kms=boto3.client("kms"))
    # Then the envelope does not contain it and opens again under the same context
    assert b"hunter2" not in envelope.model_dump_json().encode()
    assert crypto.decrypt(envelope, CONTEXT, kms=boto3.client("kms")) == b"hunter2-imap-password"


@pytest.mark.parametrize("other", [OTHER_TENANT, OTHER_ACCOUNT])
def test_a_secret_moved_to_another_tenant_or_account_does_not_open(
    stack: Stack, other: dict[str, str]
) -> None:
    key_id = stack.deployed.keys["DataKey"]
    envelope = crypto.encrypt(b"secret", CONTEXT, key_id=key_id)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(envelope, other)


def test_kms_releases_an_envelopes_data_key_only_under_its_own_context(stack: Stack) -> None:
    # Given a secret sealed for one account
    kms = boto3.client("kms")
    envelope = crypto.encrypt(b"secret", CONTEXT, key_id=stack.deployed.keys["DataKey"], kms=kms)
    wrapped = base64.b64decode(envelope.encrypted_key)
    # Then KMS itself (not only our associated data) gives its data key back under that context only
    assert len(kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=CONTEXT)["Plaintext"]) == 32
    for other in (OTHER_ACCOUNT, OTHER_TENANT, {}):
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=other)


def test_every_seal_has_its_own_data_key_and_nonce(stack: Stack) -> None:
    key_id = stack.deployed.keys["DataKey"]
    first = crypto.encrypt(SECRET, CONTEXT, key_id=key_id)
    second = crypto.encrypt(SECRET, CONTEXT, key_id=key_id)
    assert first.encrypted_key != second.encrypted_key
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_encrypt_asks_kms_for_an_aes_256_key_under_the_context_and_seals_with_it(
    stubbed_kms: tuple[Any, Stubber],
) -> None:
    kms, stub = stubbed_kms
    # Given KMS answering GenerateDataKey for exactly this request
    stub.add_response(
        "generate_data_key",
        {"CiphertextBlob": WRAPPED_KEY, "Plaintext": DATA_KEY, "KeyId": KEY_ARN},
        expected_params={"KeyId": KEY_ARN, "KeySpec": "AES_256", "EncryptionContext": CONTEXT},
    )
    # When a secret is sealed
    envelope = crypto.encrypt(SECRET, CONTEXT, key_id=KEY_ARN, kms=kms)
    # Then the envelope holds KMS's wrapped key, a 96-bit nonce, and the secret sealed with the
    # data key and the context as associated data (canonical JSON)
    assert base64.b64decode(envelope.encrypted_key) == WRAPPED_KEY
    nonce = base64.b64decode(envelope.nonce)
    assert len(nonce) == 12
    assert AESGCM(DATA_KEY).decrypt(nonce, base64.b64decode(envelope.ciphertext), AAD) == SECRET


def test_an_envelope_stored_by_an_earlier_release_still_opens(stubbed_kms: tuple[Any, Stubber]) -> None:
    kms, stub = stubbed_kms
    # Given KMS that releases the stored data key for the stored blob under the account's context
    stub.add_response(
        "decrypt",
        {"Plaintext": DATA_KEY, "KeyId": KEY_ARN},
        expected_params={"CiphertextBlob": WRAPPED_KEY, "EncryptionContext": CONTEXT},
    )
    # Then the stored envelope opens to the secret
    assert crypto.decrypt(STORED, CONTEXT, kms=kms) == SECRET


def test_a_tampered_ciphertext_does_not_open(stubbed_kms: tuple[Any, Stubber]) -> None:
    kms, stub = stubbed_kms
    stub.add_response("decrypt", {"Plaintext": DATA_KEY, "KeyId": KEY_ARN})
    raw = bytearray(base64.b64decode(STORED.ciphertext))
    raw[5] ^= 0x01
    tampered = STORED.model_copy(update={"ciphertext": base64.b64encode(bytes(raw)).decode()})
    with pytest.raises(crypto.DecryptionFailed) as raised:
        crypto.decrypt(tampered, CONTEXT, kms=kms)
    assert raised.value.code == "decryption_failed"
    assert raised.value.message
    assert "correct horse" not in str(raised.value)


@pytest.mark.parametrize(
    # Another context; a blob of another KMS key; a key policy condition on the context.
    "code",
    ["InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"],
)
def test_kms_refusing_the_data_key_is_decryption_failed(stubbed_kms: tuple[Any, Stubber], code: str) -> None:
    kms, stub = stubbed_kms
    stub.add_client_error("decrypt", service_error_code=code, http_status_code=400)
    with pytest.raises(crypto.DecryptionFailed) as raised:
        crypto.decrypt(STORED, CONTEXT, kms=kms)
    assert raised.value.code == "decryption_failed"
    assert raised.value.message
    assert "acme" not in str(raised.value)


def test_other_kms_errors_propagate_unchanged(stubbed_kms: tuple[Any, Stubber]) -> None:
    # Throttling or an outage says nothing about the secret: the caller's retry policy decides
    kms, stub = stubbed_kms
    stub.add_client_error("decrypt", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(ClientError) as raised:
        crypto.decrypt(STORED, CONTEXT, kms=kms)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
