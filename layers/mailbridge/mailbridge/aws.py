"""Cached boto3 clients, created on first use.

boto3 costs ~150 ms to import, so it is imported here lazily rather than at module load: a cold
start that only answers /health never pays for it. Endpoints come from the standard
AWS_ENDPOINT_URL* variables, which is how the local runner points handlers at moto.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient, DynamoDBServiceResource
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient


def _config(**extra: object) -> Config:
    from botocore.config import Config

    return Config(
        connect_timeout=3,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 5},
        tcp_keepalive=True,
        user_agent=user_agent(),
        **extra,  # type: ignore[arg-type]
    )


@lru_cache(maxsize=1)
def user_agent() -> str:
    """The User-Agent of every AWS request: `mailbridge/<version> botocore/<version>`, made once.

    Set through botocore's documented `Config(user_agent=...)`: without it botocore builds its
    default string again for each request (`rebuild_and_replace_user_agent_handler` on
    request-created), sanitizing every character of some 30 components: 7% of the sync's CPU
    (benchmarks/bench_sync.py, BENCH_SYNC_YAPPI_OUT), once per S3 put. It also names mailbridge in
    CloudTrail's `userAgent`. botocore's own feature metrics (the `m/` component) are left out.
    """
    import botocore

    from mailbridge import __version__

    return f"mailbridge/{__version__} botocore/{botocore.__version__}"


@lru_cache(maxsize=1)
def _session() -> Any:
    import boto3

    return boto3.session.Session()


@lru_cache(maxsize=1)
def dynamodb() -> DynamoDBServiceResource:
    # No client-side parameter validation: botocore walks every attribute of every item against
    # the service model before sending, which for the sync's 100-email transactions was the
    # largest single share of its request-building CPU (benchmarks/bench_sync.py profile).
    # DynamoDB validates the same on arrival and answers ValidationException (a ClientError);
    # our requests are built by the store, never passed through from a client.
    return _session().resource(  # type: ignore[no-any-return]
        "dynamodb", config=_config(parameter_validation=False)
    )


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    """The low-level DynamoDB client: wire-format attribute values (`{"S": ...}`), none of the
    resource layer's per-request work (a deep copy of every parameter, then a walk of the request
    and the response converting each attribute). The hot batched paths (`mailbridge.store.batch`)
    convert each item once with boto3's `TypeSerializer`/`TypeDeserializer` instead. No client-side
    parameter validation, as for the resource (see `dynamodb`)."""
    return _session().client(  # type: ignore[no-any-return]
        "dynamodb", config=_config(parameter_validation=False)
    )


def dynamodb_clients() -> tuple[Any, DynamoDBClient]:
    """Every DynamoDB client the process's stores use: the resource's and the low-level one (for
    hooks that must see every request, such as the request counters of tests and benchmarks)."""
    return dynamodb().meta.client, dynamodb_client()


def plain_client(table: Any) -> DynamoDBClient:
    """A low-level DynamoDB client talking to where the resource `table` does (endpoint, region,
    credentials): for stores handed a table built elsewhere (tests against a runner's moto)."""
    import boto3

    resource_client = table.meta.client
    credentials = resource_client._get_credentials()  # botocore BaseClient; no public accessor
    return boto3.session.Session().client(
        "dynamodb",
        region_name=resource_client.meta.region_name,
        endpoint_url=resource_client.meta.endpoint_url,
        aws_access_key_id=credentials.access_key if credentials else None,
        aws_secret_access_key=credentials.secret_key if credentials else None,
        aws_session_token=credentials.token if credentials else None,
        config=_config(parameter_validation=False),
    )


@lru_cache(maxsize=1)
def events() -> EventBridgeClient:
    return _session().client("events", config=_config())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def kms() -> KMSClient:
    return _session().client("kms", config=_config())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def s3() -> S3Client:
    # SigV4 presigned URLs: S3 refuses SigV2 for SSE-KMS objects (the mail bucket's default).
    return _session().client("s3", config=_config(signature_version="s3v4"))  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    return _session().client("sqs", config=_config())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def scheduler() -> EventBridgeSchedulerClient:
    return _session().client("scheduler", config=_config())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def secretsmanager() -> Any:  # no type stubs for Secrets Manager in the dev dependencies
    return _session().client("secretsmanager", config=_config())


@lru_cache(maxsize=4)
def apigateway_management(endpoint_url: str) -> Any:  # no type stubs in the dev dependencies
    """API Gateway's @connections API of one WebSocket API stage (its own endpoint URL)."""
    return _session().client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=_config())


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between moto instances)."""
    for cached in (
        _session,
        dynamodb,
        dynamodb_client,
        events,
        kms,
        s3,
        sqs,
        scheduler,
        secretsmanager,
        apigateway_management,
    ):
        cached.cache_clear()
