"""The audit archive bucket (template `AuditBucket`): S3 Object Lock, COMPLIANCE mode.

Objects are JSON Lines, `audit/{tenant}/{YYYY}/{MM}/{DD}/{first}-{last sequence number}.jsonl`,
each written once with its own retention (`x-amz-object-lock-mode: COMPLIANCE`,
`x-amz-object-lock-retain-until-date`), besides the bucket's default. Only PutObject exists here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mailbridge import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ARCHIVE_PREFIX = "audit/"


class AuditArchive:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3()
        return self._client

    def put_locked(self, key: str, data: bytes, retain_until: datetime) -> None:
        """Write one archive object locked (COMPLIANCE) until `retain_until`. Object Lock puts need
        an integrity checksum (S3 API reference, PutObject): SHA-256, sent by botocore."""
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType="application/x-ndjson",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=retain_until,
            ChecksumAlgorithm="SHA256",
        )
