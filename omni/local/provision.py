"""Create every resource of a topology in the emulator, idempotently.

Running :func:`provision` twice against the same (external) emulator works: what
already exists is kept and brought in line (queue attributes, secret values, rule
targets). Physical names are ``omni-<stage>-<name>``, as in the cloud.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from topology import PROJECT, Bucket, Queue, ResourceKind, Secret, Table, Topology

logger = logging.getLogger("omni.local.provision")

DEFAULT_STAGE = "local"
#: The id of the single target each rule sends to its queue.
RULE_TARGET_ID = "queue"


def physical_name(stage: str, name: str) -> str:
    """The deployed name of a declared resource (or function) in ``stage``."""
    return f"{PROJECT}-{stage}-{name}"


#: S3 bucket names: 3-63 lower-case letters, digits and hyphens (dots left out on purpose).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def bucket_name(stage: str, name: str, account_id: str) -> str:
    """The deployed name of a declared bucket: ``omni-<stage>-<name>-<account id>``.

    Bucket names are global across every AWS account, hence the account id; they are
    lower case without ``_``, hence the stage is lower-cased and ``_`` becomes ``-``.
    The same rule as the Pulumi program's (``infra/components/buckets.py``).
    """
    value = re.sub(r"[^a-z0-9-]", "-", f"{PROJECT}-{stage}-{name}-{account_id}".lower())
    if not _BUCKET_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid S3 bucket name (at most 63 characters)")
    return value


@dataclass
class QueueResources:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


@dataclass
class Provisioned:
    """What :func:`provision` created: the names functions learn, and the queues' details."""

    stage: str
    #: ``(kind, declared name)`` -> table name, queue URL, bus name, secret ARN, bucket name,
    #: e-mail identity.
    physical: dict[tuple[ResourceKind, str], str] = field(default_factory=dict)
    queues: dict[str, QueueResources] = field(default_factory=dict)
    bus_arn: str = ""

    def as_json(self) -> dict[str, str]:
        """``physical`` with ``"kind:name"`` keys, for the state file and ``/healthz``."""
        return {f"{kind}:{name}": value for (kind, name), value in sorted(self.physical.items())}


def provision(topology: Topology, session: Any, *, stage: str = DEFAULT_STAGE) -> Provisioned:
    """Create the tables, queues (+ DLQs), bus, rules, secrets and buckets of ``topology``.

    ``session`` is a boto3 session whose clients reach the emulator.
    """
    result = Provisioned(stage=stage)
    dynamodb = session.client("dynamodb")
    sqs = session.client("sqs")
    events = session.client("events")
    secrets = session.client("secretsmanager")

    for table in topology.tables:
        result.physical[("table", table.name)] = _ensure_table(
            dynamodb, table, physical_name(stage, table.name)
        )
    for queue in topology.queues:
        resources = _ensure_queue(sqs, queue, stage)
        result.queues[queue.name] = resources
        result.physical[("queue", queue.name)] = resources.url
    bus_name = physical_name(stage, topology.bus.name)
    result.bus_arn = _ensure_bus(events, bus_name)
    result.physical[("bus", topology.bus.name)] = bus_name
    for rule in topology.rules:
        rule_name = physical_name(stage, rule.name)
        events.put_rule(
            Name=rule_name,
            EventBusName=bus_name,
            EventPattern=json.dumps(rule.event_pattern),
            State="ENABLED",
            Description=rule.description,
        )
        events.put_targets(
            Rule=rule_name,
            EventBusName=bus_name,
            Targets=[{"Id": RULE_TARGET_ID, "Arn": result.queues[rule.target_queue].arn}],
        )
    for secret in topology.secrets:
        result.physical[("secret", secret.name)] = _ensure_secret(
            secrets, secret, physical_name(stage, secret.name)
        )
    for identity in topology.email_identities:
        # Nothing to create: locally no e-mail leaves the outbox; functions learn the name.
        result.physical[("email-identity", identity.name)] = identity.local_default
    for api in topology.websocket_apis:
        # Nothing to create in the emulator: the local runtime serves each WebSocket API
        # itself and puts its management endpoint here when it starts (empty until then:
        # nothing is pushed, the web chat's polling still shows every message).
        result.physical[("websocket", api.name)] = ""
    if topology.buckets:
        s3 = session.client("s3")
        account_id = str(session.client("sts").get_caller_identity()["Account"])
        for bucket in topology.buckets:
            result.physical[("bucket", bucket.name)] = _ensure_bucket(
                s3, bucket, bucket_name(stage, bucket.name, account_id)
            )
            if bucket.notify_queue:
                # S3 event notifications straight to the queue, as in the cloud.
                s3.put_bucket_notification_configuration(
                    Bucket=result.physical[("bucket", bucket.name)],
                    NotificationConfiguration={
                        "QueueConfigurations": [
                            {
                                "QueueArn": result.queues[bucket.notify_queue].arn,
                                "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                                "Filter": {
                                    "Key": {
                                        "FilterRules": [{"Name": "prefix", "Value": bucket.notify_prefix}]
                                    }
                                },
                            }
                        ]
                    },
                )
    logger.info(
        "provisioned %d tables, %d queues, %d rules, %d secrets, %d buckets (stage %s)",
        len(topology.tables),
        len(topology.queues),
        len(topology.rules),
        len(topology.secrets),
        len(topology.buckets),
        stage,
    )
    return result


# --------------------------------------------------------------------------- #
def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _ensure_table(client: Any, table: Table, name: str) -> str:
    key_schema = [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
    if table.sort_key:
        key_schema.append({"AttributeName": table.sort_key, "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": key_schema,
        "AttributeDefinitions": [
            {"AttributeName": attr, "AttributeType": "S"} for attr in table.key_attributes
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.gsis:
        indexes = []
        for gsi in table.gsis:
            schema = [{"AttributeName": gsi.partition_key, "KeyType": "HASH"}]
            if gsi.sort_key:
                schema.append({"AttributeName": gsi.sort_key, "KeyType": "RANGE"})
            projection: dict[str, Any] = {"ProjectionType": gsi.projection}
            if gsi.projection == "INCLUDE":
                projection["NonKeyAttributes"] = list(gsi.non_key_attributes)
            indexes.append({"IndexName": gsi.name, "KeySchema": schema, "Projection": projection})
        request["GlobalSecondaryIndexes"] = indexes
    try:
        client.create_table(**request)
    except ClientError as exc:
        if _error_code(exc) not in {"ResourceInUseException", "TableAlreadyExistsException"}:
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    if table.ttl_attribute:
        current = client.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        enabled = current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
        if not enabled or current.get("AttributeName") != table.ttl_attribute:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
    return name


def _ensure_sqs_queue(client: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if _error_code(exc) not in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
            raise
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    else:
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _ensure_queue(client: Any, queue: Queue, stage: str) -> QueueResources:
    dlq_url, dlq_arn = _ensure_sqs_queue(
        client,
        physical_name(stage, queue.dlq_name),
        {"MessageRetentionPeriod": str(queue.dlq_retention_s)},
    )
    url, arn = _ensure_sqs_queue(
        client,
        physical_name(stage, queue.name),
        {
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "MessageRetentionPeriod": str(queue.retention_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
            ),
        },
    )
    return QueueResources(url=url, arn=arn, dlq_url=dlq_url, dlq_arn=dlq_arn)


def _ensure_bus(client: Any, name: str) -> str:
    try:
        return str(client.create_event_bus(Name=name)["EventBusArn"])
    except ClientError as exc:
        if _error_code(exc) != "ResourceAlreadyExistsException":
            raise
    return str(client.describe_event_bus(Name=name)["Arn"])


def _ensure_secret(client: Any, secret: Secret, name: str) -> str:
    value = os.environ.get(secret.local_env_var) or secret.local_default
    try:
        return str(client.create_secret(Name=name, SecretString=value, Description=secret.description)["ARN"])
    except ClientError as exc:
        if _error_code(exc) != "ResourceExistsException":
            raise
    current = client.get_secret_value(SecretId=name)
    if current.get("SecretString") != value:
        client.put_secret_value(SecretId=name, SecretString=value)
    return str(current["ARN"])


def _ensure_bucket(client: Any, bucket: Bucket, name: str) -> str:
    """A private, encrypted bucket whose objects expire, as in the cloud."""
    request: dict[str, Any] = {"Bucket": name}
    region = client.meta.region_name
    if region and region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**request)
    except ClientError as exc:
        if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    client.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    client.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    if bucket.versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if bucket.expire_after_days is None:
        return name
    client.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-objects",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": bucket.expire_after_days},
                }
            ]
        },
    )
    return name
