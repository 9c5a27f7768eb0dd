"""The mail bucket: raw MIME, attachments, large bodies and quarantined input.

Keys always start with the area and the tenant, so lifecycle rules and IAM conditions can scope them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mailbridge import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PRESIGN_SECONDS = 300


class BlobStore:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

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

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put_json(self, key: str, document: Any) -> None:
        self.put(key, json.dumps(document, separators=(",", ":")).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

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
