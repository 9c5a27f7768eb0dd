"""Create the template's resources in moto (server or `mock_aws`) from their own Properties.

`create_resources(clients, template)` makes KMS keys and aliases, Secrets Manager secrets (with a
generated value, as `GenerateSecretString` asks), buckets, tables, queues (dead-letter queues
first), event buses, pattern rules with their targets, and Scheduler schedules. Types the
runner does not need (IAM, Cognito, HttpApi, layers, bucket policies...) are skipped with a debug
log. `tables_from_template(dynamodb_client, path)` builds only the DynamoDB tables (and the KMS keys
they name) for integration tests running under `moto.mock_aws()`.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local.template import Template, TemplateError, load_template

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]  # service name -> boto3 client


@dataclass
class Deployed:
    """What `create_resources` made, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id -> URL
    queue_url_by_arn: dict[str, str] = field(default_factory=dict)  # ARN -> URL
    visibility_timeouts: dict[str, int] = field(default_factory=dict)  # URL -> seconds
    buckets: dict[str, str] = field(default_factory=dict)
    buses: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # logical id -> key id
    secrets: dict[str, str] = field(default_factory=dict)  # logical id -> secret ARN
    rules: dict[str, str] = field(default_factory=dict)
    schedules: dict[str, str] = field(default_factory=dict)


_HANDLED = {
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::SecretsManager::Secret",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::Events::EventBus",
    "AWS::Events::Rule",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::Scheduler::Schedule",
}


def create_resources(clients: ClientFactory | boto3.session.Session, template: Template) -> Deployed:
    """Create every supported resource of `template`; `clients` is a session or `service -> client`."""
    client = _client_factory(clients)
    deployed = Deployed()
    for lid, resource in template.resources.items():
        if resource.get("Type") not in _HANDLED:
            log.debug("skipping %s (%s): not needed locally", lid, resource.get("Type"))
    # Order matters: key ids are needed to resolve everything that names them.
    for lid in template.of_type("AWS::KMS::Key"):
        _create_key(client("kms"), template, lid, deployed)
    for lid in template.of_type("AWS::KMS::Alias"):
        props = template.properties(lid)
        client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    for lid in template.of_type("AWS::SecretsManager::Secret"):
        _create_secret(client("secretsmanager"), template, lid, deployed)
    for lid in template.of_type("AWS::S3::Bucket"):
        deployed.buckets[lid] = _create_bucket(client("s3"), template, lid)
    for lid in template.of_type("AWS::DynamoDB::Table"):
        deployed.tables[lid] = create_table(client("dynamodb"), template, lid)
    for lid in _queues_in_dependency_order(template):
        _create_queue(client("sqs"), template, lid, deployed)
    for lid in template.of_type("AWS::Events::EventBus"):
        name = template.physical_name(lid)
        client("events").create_event_bus(Name=name)
        deployed.buses[lid] = name
    for lid in template.of_type("AWS::Events::Rule"):
        _create_rule(client("events"), template, lid, deployed)
    for lid in template.of_type("AWS::Scheduler::ScheduleGroup"):
        client("scheduler").create_schedule_group(Name=template.physical_name(lid))
    for lid in template.of_type("AWS::Scheduler::Schedule"):
        _create_schedule(client("scheduler"), template, lid, deployed)
    return deployed


def tables_from_template(
    dynamodb_client: Any,
    template_path: Path = Path("template.yaml"),
    parameters: dict[str, str] | None = None,
) -> dict[str, str]:
    """Create the template's DynamoDB tables (logical id -> table name). Works under `mock_aws()`.

    KMS keys named by the tables' SSESpecification are created first, with a KMS client on the same
    region and endpoint as `dynamodb_client`.
    """
    template = load_template([template_path], parameters=parameters)
    endpoint = str(dynamodb_client.meta.endpoint_url)
    custom_endpoint = None if endpoint.endswith(".amazonaws.com") else endpoint
    kms = boto3.client("kms", region_name=dynamodb_client.meta.region_name, endpoint_url=custom_endpoint)
    deployed = Deployed()
    for lid in template.of_type("AWS::KMS::Key"):
        _create_key(kms, template, lid, deployed)
    return {
        lid: create_table(dynamodb_client, template, lid) for lid in template.of_type("AWS::DynamoDB::Table")
    }


def _client_factory(clients: ClientFactory | boto3.session.Session) -> ClientFactory:
    if isinstance(clients, boto3.session.Session):
        session = clients
        cache: dict[str, Any] = {}

        def factory(service: str) -> Any:
            if service not in cache:
                cache[service] = session.client(service)  # type: ignore[call-overload]
            return cache[service]

        return factory
    return clients


def _create_key(kms: Any, template: Template, lid: str, deployed: Deployed) -> None:
    raw = template.resources[lid].get("Properties") or {}
    args: dict[str, Any] = {}
    for prop in ("Description", "KeyUsage", "KeySpec"):
        if prop in raw:
            args[prop] = str(template.resolve(raw[prop]))
    if "KeyPolicy" in raw:
        args["Policy"] = json.dumps(template.resolve(raw["KeyPolicy"]))
    key_id = kms.create_key(**args)["KeyMetadata"]["KeyId"]
    template.physical_ids[lid] = key_id
    deployed.keys[lid] = key_id
    if str(template.resolve(raw.get("EnableKeyRotation", False))).lower() == "true":
        kms.enable_key_rotation(KeyId=key_id)


def _create_secret(secretsmanager: Any, template: Template, lid: str, deployed: Deployed) -> None:
    """A secret with its SecretString, or one generated per GenerateSecretString (length, and
    without punctuation when asked); `Ref` then gives its ARN, as in CloudFormation."""
    props = template.properties(lid)
    args: dict[str, Any] = {"Name": template.physical_name(lid)}
    if "Description" in props:
        args["Description"] = str(props["Description"])
    if "SecretString" in props:
        args["SecretString"] = str(props["SecretString"])
    else:
        spec = props.get("GenerateSecretString") or {}
        alphabet = string.ascii_letters + string.digits
        if str(spec.get("ExcludePunctuation", False)).lower() != "true":
            alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
        length = int(spec.get("PasswordLength", 32))
        args["SecretString"] = "".join(secrets.choice(alphabet) for _ in range(length))
    arn = secretsmanager.create_secret(**args)["ARN"]
    template.physical_ids[lid] = arn
    deployed.secrets[lid] = arn


def _create_bucket(s3: Any, template: Template, lid: str) -> str:
    """A bucket; with Object Lock (enabled at creation, as S3 requires, which turns versioning on,
    then its default retention) when the Properties ask for it. Other properties (versioning of
    unlocked buckets included) are not emulated."""
    props = template.properties(lid)
    name = template.physical_name(lid)
    locked = str(props.get("ObjectLockEnabled", False)).lower() == "true"
    s3.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if locked else {}))
    lock = props.get("ObjectLockConfiguration")
    if locked and lock:
        retention = (lock.get("Rule") or {}).get("DefaultRetention") or {}
        config: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        if retention:
            config["Rule"] = {
                "DefaultRetention": {
                    "Mode": str(retention["Mode"]),
                    **{unit: int(retention[unit]) for unit in ("Days", "Years") if unit in retention},
                }
            }
        s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=config)
    return name


def create_table(dynamodb: Any, template: Template, lid: str) -> str:
    """Create one `AWS::DynamoDB::Table` from its Properties; returns the table name."""
    props = template.properties(lid)
    name = template.physical_name(lid)
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if args["BillingMode"] == "PROVISIONED":
        args["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
    for prop in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if prop in props:
            indexes = [dict(ix) for ix in props[prop]]
            if args["BillingMode"] == "PROVISIONED" and prop == "GlobalSecondaryIndexes":
                for ix in indexes:
                    ix["ProvisionedThroughput"] = _throughput(ix.get("ProvisionedThroughput"))
            args[prop] = indexes
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        args["SSESpecification"] = {
            "Enabled": str(sse.get("SSEEnabled", False)).lower() == "true",
            **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
            **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
        }
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = str(props["DeletionProtectionEnabled"]).lower() == "true"
    if "Tags" in props:
        args["Tags"] = props["Tags"]
    dynamodb.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and str(ttl.get("Enabled", False)).lower() == "true":
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    return name


def _throughput(spec: dict[str, Any] | None) -> dict[str, int]:
    spec = spec or {}
    return {
        "ReadCapacityUnits": int(spec.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(spec.get("WriteCapacityUnits", 5)),
    }


def _queues_in_dependency_order(template: Template) -> list[str]:
    """Queues whose RedrivePolicy names another queue come after it."""
    queues = template.of_type("AWS::SQS::Queue")
    arn_to_lid = {template.get_att(lid, "Arn"): lid for lid in queues}
    ordered: list[str] = []

    def visit(lid: str, seen: tuple[str, ...]) -> None:
        if lid in ordered:
            return
        if lid in seen:
            raise TemplateError(f"queue redrive cycle: {' -> '.join((*seen, lid))}")
        redrive = template.properties(lid).get("RedrivePolicy") or {}
        target = arn_to_lid.get(str(redrive.get("deadLetterTargetArn", "")))
        if target:
            visit(target, (*seen, lid))
        ordered.append(lid)

    for lid in queues:
        visit(lid, ())
    return ordered


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)


def _create_queue(sqs: Any, template: Template, lid: str, deployed: Deployed) -> None:
    props = template.properties(lid)
    attributes = {k: _attr(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    if "RedriveAllowPolicy" in props:
        attributes["RedriveAllowPolicy"] = json.dumps(props["RedriveAllowPolicy"])
    url = sqs.create_queue(QueueName=template.physical_name(lid), Attributes=attributes)["QueueUrl"]
    deployed.queue_urls[lid] = url
    deployed.queue_url_by_arn[template.get_att(lid, "Arn")] = url
    deployed.visibility_timeouts[url] = int(props.get("VisibilityTimeout", 30))


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _create_rule(events: Any, template: Template, lid: str, deployed: Deployed) -> None:
    props = template.properties(lid)
    name = template.physical_name(lid)
    args: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
    if "EventBusName" in props:
        args["EventBusName"] = _bus_name(str(props["EventBusName"]))
    if "EventPattern" in props:
        pattern = props["EventPattern"]
        args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    if "ScheduleExpression" in props:
        args["ScheduleExpression"] = props["ScheduleExpression"]
    if "Description" in props:
        args["Description"] = props["Description"]
    events.put_rule(**args)
    targets = []
    for target in props.get("Targets") or []:
        keep = (
            "Id",
            "Arn",
            "Input",
            "InputPath",
            "InputTransformer",
            "SqsParameters",
            "RoleArn",
            "DeadLetterConfig",
        )
        targets.append({k: v for k, v in target.items() if k in keep})
    if targets:
        bus = {"EventBusName": args["EventBusName"]} if "EventBusName" in args else {}
        events.put_targets(Rule=name, Targets=targets, **bus)
    deployed.rules[lid] = name


def _bus_name(name_or_arn: str) -> str:
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def _create_schedule(scheduler: Any, template: Template, lid: str, deployed: Deployed) -> None:
    props = template.properties(lid)
    name = template.physical_name(lid)
    args: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": props["ScheduleExpression"],
        "FlexibleTimeWindow": props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
        "Target": props["Target"],
    }
    optional = (
        "GroupName",
        "ScheduleExpressionTimezone",
        "State",
        "Description",
        "StartDate",
        "EndDate",
        "KmsKeyArn",
    )
    args.update({k: props[k] for k in optional if k in props})
    scheduler.create_schedule(**args)
    deployed.schedules[lid] = name
