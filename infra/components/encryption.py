"""The stack's customer-managed KMS key: tables, queues, the bus and its archive, log groups,
the inbound-mail bucket and the alerts topic are encrypted with it.

One symmetric key (rotated every year by KMS), with an alias ``alias/omni-<stage>``. Its key
policy lets:

* the account administer and use it: IAM policies decide who may (the functions' roles
  are granted ``kms:Decrypt``/``kms:GenerateDataKey`` on this key only, for exactly the
  encrypted resources they touch, see :func:`function_key_statement`);
* CloudWatch Logs encrypt the stack's log groups only (encryption-context condition on
  the log-group ARNs ``/aws/lambda/omni-<stage>-*`` and ``/aws/apigateway/omni-<stage>-*``);
* EventBridge encrypt the events on the stack's bus and in its archive (encryption
  context = the bus ARN), and send to the encrypted queues (this account only);
* SES store received mail in the SSE-KMS bucket, for the stack's receipt rules only;
* CloudWatch alarms publish to the encrypted alerts topic (this account only).

The queues reuse a data key for :data:`DATA_KEY_REUSE_S` seconds, so KMS is called about
once per hour per queue and principal rather than once per message: the KMS cost of a
message is negligible.

Statements list their actions one by one (no ``kms:*``); a key policy's resource is
always ``*`` (it means "this key").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.buckets import bucket_name
from infra.components.common import TYPE_PREFIX, PolicyStatement, physical_name, policy_json, sid
from topology import PROJECT, Function, ResourceKind, Topology

#: Seconds an SQS queue reuses a data key before asking KMS again (AWS allows 60..86400).
DATA_KEY_REUSE_S = 3600
#: Days a deleted key can still be restored (AWS allows 7..30).
DELETION_WINDOW_DAYS = 30

#: What the account's administrators (IAM) may do with the key.
ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)
#: The cryptographic operations IAM policies may grant (the functions get only two of them).
USE_ACTIONS = (
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)
#: What a service needs to encrypt and decrypt with the key on the stack's behalf.
SERVICE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
#: What CloudWatch Logs needs for an encrypted log group.
LOGS_ACTIONS = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)

#: The resource kinds the key encrypts, and the service that uses the key for each.
ENCRYPTED_KINDS: dict[ResourceKind, str] = {
    "table": "dynamodb",
    "queue": "sqs",
    "bus": "events",
    "bucket": "s3",
}
#: The accesses that write (a data key is generated) rather than only read (decrypted).
_WRITES = {"write", "readwrite", "publish", "send"}


@dataclass(frozen=True)
class KeyPolicyContext:
    """What the key policy names: account, region, partition, stage and the SES receipt rules."""

    account_id: str
    region: str
    stage: str
    bus_name: str
    partition: str = "aws"
    #: ARNs of the receipt rules that store mail in the encrypted bucket.
    receipt_rule_arns: tuple[str, ...] = ()
    #: Names of the buckets whose S3 notifications go to an encrypted queue.
    notifying_buckets: tuple[str, ...] = ()

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"

    @property
    def bus_arn(self) -> str:
        return self.arn("events", f"event-bus/{self.bus_name}")

    @property
    def log_group_arns(self) -> list[str]:
        """Patterns of every log group of the stack: the functions' and the API's access logs."""
        prefix = physical_name(self.stage, "")
        return [
            self.arn("logs", f"log-group:/aws/lambda/{prefix}*"),
            self.arn("logs", f"log-group:/aws/apigateway/{prefix}*"),
        ]


def key_policy(context: KeyPolicyContext) -> list[PolicyStatement]:
    """The statements of the key policy (pure: the component and the tests use it)."""
    account_root = f"arn:{context.partition}:iam::{context.account_id}:root"
    same_account = {"aws:SourceAccount": context.account_id}

    def service(name: str, principal: str, actions: Sequence[str], condition: dict | None) -> PolicyStatement:
        statement: PolicyStatement = {
            "Sid": sid(name),
            "Effect": "Allow",
            "Principal": {"Service": principal},
            "Action": list(actions),
            "Resource": "*",
        }
        if condition:
            statement["Condition"] = condition
        return statement

    statements: list[PolicyStatement] = [
        {
            "Sid": "AccountAdministersAndDelegatesToIam",
            "Effect": "Allow",
            "Principal": {"AWS": account_root},
            "Action": list(ADMIN_ACTIONS + USE_ACTIONS),
            "Resource": "*",
        },
        service(
            "cloudwatch logs encrypts the stacks log groups",
            f"logs.{context.region}.amazonaws.com",
            LOGS_ACTIONS,
            {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": context.log_group_arns}},
        ),
        service("eventbridge describes the key", "events.amazonaws.com", ("kms:DescribeKey",), None),
        service(
            "eventbridge encrypts the bus and its archive",
            "events.amazonaws.com",
            (*SERVICE_ACTIONS, "kms:ReEncryptFrom", "kms:ReEncryptTo"),
            {"StringEquals": {"kms:EncryptionContext:aws:events:event-bus:arn": context.bus_arn}},
        ),
        service(
            "eventbridge sends to the encrypted queues",
            "events.amazonaws.com",
            SERVICE_ACTIONS,
            {"StringEquals": same_account},
        ),
        service(
            "cloudwatch alarms publish to the encrypted topic",
            "cloudwatch.amazonaws.com",
            SERVICE_ACTIONS,
            {"StringEquals": same_account},
        ),
    ]
    if context.notifying_buckets:
        statements.append(
            service(
                "s3 sends bucket notifications to the encrypted queues",
                "s3.amazonaws.com",
                SERVICE_ACTIONS,
                {
                    "StringEquals": same_account,
                    "ArnLike": {
                        "aws:SourceArn": [
                            f"arn:{context.partition}:s3:::{b}" for b in context.notifying_buckets
                        ]
                    },
                },
            )
        )
    if context.receipt_rule_arns:
        statements.append(
            service(
                "ses stores mail in the encrypted bucket",
                "ses.amazonaws.com",
                SERVICE_ACTIONS,
                {
                    "StringEquals": same_account,
                    "ArnLike": {"aws:SourceArn": list(context.receipt_rule_arns)},
                },
            )
        )
    return statements


def key_actions(fn: Function) -> tuple[str, ...]:
    """What ``fn``'s role needs on the key: decrypt what it reads or consumes, generate data
    keys for what it writes (SQS and S3 producers also decrypt); nothing without encrypted grants."""
    kinds = {grant.kind for grant in fn.grants if grant.kind in ENCRYPTED_KINDS}
    if not kinds and not fn.queue:
        return ()
    writes = any(grant.kind in ENCRYPTED_KINDS and grant.access in _WRITES for grant in fn.grants)
    return SERVICE_ACTIONS if writes else ("kms:Decrypt",)


def key_services(fn: Function, region: str) -> list[str]:
    """The services through which ``fn`` may use the key (``kms:ViaService``)."""
    kinds = {grant.kind for grant in fn.grants if grant.kind in ENCRYPTED_KINDS}
    if fn.queue:
        kinds.add("queue")
    return sorted(f"{ENCRYPTED_KINDS[kind]}.{region}.amazonaws.com" for kind in kinds)


def function_key_statement(fn: Function, key_arn: str, region: str) -> PolicyStatement | None:
    """The statement of ``fn``'s execution role on the key, or None when it touches nothing encrypted."""
    actions = key_actions(fn)
    if not actions:
        return None
    return {
        "Sid": "UseStackKey",
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": [key_arn],
        "Condition": {"StringEquals": {"kms:ViaService": key_services(fn, region)}},
    }


@dataclass(frozen=True)
class EncryptionArgs:
    topology: Topology
    stage: str
    account_id: pulumi.Input[str]
    region: pulumi.Input[str]
    #: The receipt rules that store mail in a bucket (``ses_writers`` of email_receiving).
    receipt_rule_arns: Sequence[pulumi.Input[str]] = ()
    deletion_window_in_days: int = DELETION_WINDOW_DAYS


class Encryption(pulumi.ComponentResource):
    """The stack's customer-managed key and its alias."""

    key: aws.kms.Key
    alias: aws.kms.Alias
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Encryption", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bus_name = physical_name(args.stage, args.topology.bus.name)

        def document(values: list[str]) -> str:
            account, region, rules = values[0], values[1], tuple(values[2:])
            partition = "aws-cn" if region.startswith("cn-") else "aws"
            if region.startswith("us-gov-"):
                partition = "aws-us-gov"
            context = KeyPolicyContext(
                account_id=account,
                region=region,
                stage=args.stage,
                bus_name=bus_name,
                partition=partition,
                receipt_rule_arns=rules,
                notifying_buckets=tuple(
                    bucket_name(args.stage, b.name, account) for b in args.topology.buckets if b.notify_queue
                ),
            )
            return policy_json(key_policy(context))

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the data of the {PROJECT} stack {args.stage} at rest.",
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_in_days,
            policy=pulumi.Output.all(args.account_id, args.region, *args.receipt_rule_arns).apply(document),
            opts=child,
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{physical_name(args.stage, 'data')}",
            target_key_id=self.key.key_id,
            opts=child,
        )
        self.arn = self.key.arn
        self.register_outputs({"key_arn": self.key.arn, "alias": self.alias.name})
