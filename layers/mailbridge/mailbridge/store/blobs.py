"""The mail bucket: raw MIME, attachments, large bodies and quarantined input.

Keys always start with the area and the tenant, so lifecycle rules and IAM conditions can scope them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailbridge import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PRESIGN_SECONDS = 300
# Concurrent PutObject calls of one `put_many` (botocore's default pool keeps 10 connections).
PUT_WORKERS = 8


@dataclass(frozen=True)
class Upload:
    """One object to write: key, bytes and Content-Type."""

    key: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class PresignedPost:
    """An S3 POST upload: send `fields` then the file, as multipart/form-data, to `url`."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class BlobHead:
    """What a HEAD tells about a stored object: its size in bytes and its user metadata."""

    size: int
    metadata: dict[str, str] = field(default_factory=dict)


class BlobStore:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client
        self._pool: ThreadPoolExecutor | None = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3()
        return self._client

    @staticmethod
    def raw_key(tenant_id: str, account_id: str, email_id: str) -> str:
        return f"raw/{tenant_id}/{account_id}/{email_id}.eml"

    @staticmethod
    def attachment_key(tenant_id: str, email_id: str, attachment_id: str) -> str:
        return f"att/{tenant_id}/{email_id}/{attachment_id}"

    @staticmethod
    def body_key(tenant_id: str, email_id: str) -> str:
        return f"body/{tenant_id}/{email_id}.json"

    @staticmethod
    def upload_key(tenant_id: str, upload_id: str) -> str:
        return f"uploads/{tenant_id}/{upload_id}"

    @staticmethod
    def quarantine_key(tenant_id: str, account_id: str, name: str) -> str:
        return f"quarantine/{tenant_id}/{account_id}/{name}.eml"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_many(self, uploads: Sequence[Upload]) -> None:
        """Write every upload, `PUT_WORKERS` at a time (the S3 client is thread-safe). Returns when
        all have finished; the first failure is raised then (the others still completed, which
        is harmless: keys are deterministic and a rewrite stores the same bytes)."""
        if len(uploads) <= 1:
            for upload in uploads:
                self.put(upload.key, upload.data, upload.content_type)
            return
        client = self.client  # created here, not raced for by the workers
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PUT_WORKERS, thread_name_prefix="s3put")
        futures = [
            self._pool.submit(
                client.put_object, Bucket=self.bucket, Key=u.key, Body=u.data, ContentType=u.content_type
            )
            for u in uploads
        ]
        wait(futures)
        for future in futures:
            future.result()

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes; with `max_bytes`, at most `max_bytes + 1` of them are read, so a caller
        sees that an object is too large without holding all of it."""
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return body.read() if max_bytes is None else body.read(max_bytes + 1)

    def head(self, key: str) -> BlobHead | None:
        """Size and user metadata (names without `x-amz-meta-`) of an object; None when it is absent."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return BlobHead(size=int(head["ContentLength"]), metadata=dict(head.get("Metadata") or {}))

    def put_json(self, key: str, document: Any) -> None:
        self.put(key, json.dumps(document, separators=(",", ":")).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def presign_post(
        self,
        key: str,
        *,
        content_type: str,
        max_size: int,
        metadata: Mapping[str, str] | None = None,
        expires_in: int = PRESIGN_SECONDS,
    ) -> PresignedPost:
        """A presigned POST that S3 accepts only for this key, this Content-Type, these metadata
        values and a body of 1..`max_size` bytes, until `expires_in` seconds from now.

        Every form field is also an exact-match policy condition, and `content-length-range` bounds
        the file (S3 POST policy: docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html).
        boto3 adds the bucket and key conditions itself.
        """
        fields = {"Content-Type": content_type}
        fields |= {f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()}
        conditions: list[Any] = [{name: value} for name, value in fields.items()]
        conditions.append(["content-length-range", 1, max_size])
        post = self.client.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        return PresignedPost(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()})

    def presign_get(
        self,
        key: str,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        expires_in: int = PRESIGN_SECONDS,
    ) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            safe = filename.replace('"', "").replace("\r", "").replace("\n", "")
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        if content_type:
            params["ResponseContentType"] = content_type
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
