"""Key builders shared by the mail stores. Values from mail (Message-IDs, folder names) are hashed or
escaped so a '#' or a 998-character header can never break a key."""

from __future__ import annotations

import hashlib
from urllib.parse import quote


def digest(value: str, length: int = 32) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def folder_key(folder: str) -> str:
    return quote(folder, safe="")


def tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def email_sk(email_id: str) -> str:
    return f"EMAIL#{email_id}"


def location_prefix(account_id: str, folder: str, uidvalidity: int | None = None) -> str:
    prefix = f"LOC#{account_id}#{folder_key(folder)}#"
    return prefix if uidvalidity is None else f"{prefix}{uidvalidity}#"


def location_sk(account_id: str, folder: str, uidvalidity: int, uid: int | str) -> str:
    # Zero-padded so a folder's locations sort by UID; a provider's own id (Graph) as it is.
    return f"{location_prefix(account_id, folder, uidvalidity)}{_uid(uid)}"


def _uid(uid: int | str) -> str:
    return uid if isinstance(uid, str) else f"{uid:010d}"


def message_id_sk(message_id: str) -> str:
    return f"MSGID#{digest(message_id)}"


def subject_sk(account_scope: str, base_subject: str) -> str:
    return f"SUBJ#{account_scope}#{digest(base_subject.casefold())}"


def thread_sk(thread_id: str) -> str:
    return f"THREAD#{thread_id}"


def quarantine_sk(account_id: str, folder: str, uidvalidity: int, uid: int | str) -> str:
    return f"QUAR#{account_id}#{folder_key(folder)}#{uidvalidity}#{_uid(uid)}"
