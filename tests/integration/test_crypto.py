from __future__ import annotations

import boto3
import pytest

from mailbridge import crypto
from tests.fixtures.aws import Stack


def test_a_secret_round_trips_under_its_context(stack: Stack) -> None:
    # Given the template's data key
    key_id = stack.deployed.keys["DataKey"]
    context = {"tenant_id": "acme", "account_id": "acc-1"}
    # When a password is sealed
    envelope = crypto.encrypt(b"hunter2-imap-password", context, key_id=key_id, kms=boto3.client("kms"))
    # Then the envelope does not contain it and opens again under the same context
    assert b"hunter2" not in envelope.model_dump_json().encode()
    assert crypto.decrypt(envelope, context, kms=boto3.client("kms")) == b"hunter2-imap-password"


@pytest.mark.parametrize(
    "other",
    [{"tenant_id": "globex", "account_id": "acc-1"}, {"tenant_id": "acme", "account_id": "acc-2"}],
)
def test_a_secret_moved_to_another_tenant_or_account_does_not_open(
    stack: Stack, other: dict[str, str]
) -> None:
    key_id = stack.deployed.keys["DataKey"]
    envelope = crypto.encrypt(b"secret", {"tenant_id": "acme", "account_id": "acc-1"}, key_id=key_id)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(envelope, other)


def test_a_tampered_ciphertext_does_not_open(stack: Stack) -> None:
    key_id = stack.deployed.keys["DataKey"]
    context = {"tenant_id": "acme", "account_id": "acc-1"}
    envelope = crypto.encrypt(b"secret", context, key_id=key_id)
    raw = bytearray(envelope.ciphertext.encode())
    raw[5] = ord("A") if raw[5] != ord("A") else ord("B")
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(envelope.model_copy(update={"ciphertext": raw.decode()}), context)
