"""S3 buckets: private (public access blocked, ACLs off), encrypted (SSE-KMS with the stack's key
when given), objects expiring.

A bucket that receives e-mail gets a bucket policy letting SES put objects under the
receiving prefix, for the stack's own receipt rule only (``aws:SourceAccount`` and
``aws:SourceArn``, as the SES developer guide recommends).

Physical names are ``omni-<stage>-<name>-<account id>`` (lower case, ``_`` -> ``-``):
bucket names are global across all AWS accounts, so the account id keeps two accounts
deploying the same stage apart, and the name stays predictable for operators.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, PolicyStatement, policy_json, sid
from topology import PROJECT, Bucket

#: S3 bucket names: 3-63 lower-case letters, digits and hyphens (dots left out on purpose).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def bucket_name(stage: str, name: str, account_id: str) -> str:
    """``omni-<stage>-<name>-<account id>``, made a valid bucket name (the local runtime uses the same)."""
    value = re.sub(r"[^a-z0-9-]", "-", f"{PROJECT}-{stage}-{name}-{account_id}".lower())
    if not _BUCKET_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid S3 bucket name (at most 63 characters)")
    return value


@dataclass(frozen=True)
class SesWriter:
    """A receipt rule whose S3 action writes into a bucket."""

    prefix: str
    rule_arn: pulumi.Input[str]


@dataclass(frozen=True)
class BucketsArgs:
    buckets: Sequence[Bucket]
    stage: str
    account_id: pulumi.Input[str]
    #: The receipt rules that store mail, by declared bucket name.
    ses_writers: Mapping[str, Sequence[SesWriter]] = field(default_factory=dict)
    #: Delete the objects with the bucket on ``pulumi destroy`` (throwaway stacks only).
    force_destroy: bool = False
    #: The customer-managed key of the objects (SSE-KMS with an S3 bucket key; None: SSE-S3).
    kms_key_arn: pulumi.Input[str] | None = None
    #: The queues buckets notify (``Bucket.notify_queue``): (ARN, URL) by declared queue name.
    notify_queues: Mapping[str, tuple[pulumi.Input[str], pulumi.Input[str]]] = field(default_factory=dict)


#: The object events a notifying bucket sends (an article written or deleted).
NOTIFY_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")


def s3_notify_statement(queue_arn: str, bucket_arn: str, account_id: str) -> PolicyStatement:
    """The queue policy statement letting S3 send the notifications of this stack's bucket only."""
    return {
        "Sid": "S3SendsBucketNotifications",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {
            "ArnEquals": {"aws:SourceArn": bucket_arn},
            "StringEquals": {"aws:SourceAccount": account_id},
        },
    }


def ses_put_statement(bucket_arn: str, prefix: str, account_id: str, rule_arn: str) -> PolicyStatement:
    """Lets SES's S3 action store mail under ``prefix``, for one receipt rule of this account only."""
    return {
        "Sid": sid("ses puts", prefix or "all"),
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"{bucket_arn}/{prefix}*",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id, "aws:SourceArn": rule_arn}},
    }


def _physical_name(stage: str, name: str, account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(account_id).apply(lambda account: bucket_name(stage, name, account))


def _ses_policy(
    bucket_arn: pulumi.Input[str], account_id: pulumi.Input[str], writers: Sequence[SesWriter]
) -> pulumi.Output[str]:
    def document(values: list[str]) -> str:
        arn, account, rule_arns = values[0], values[1], values[2:]
        return policy_json(
            [
                ses_put_statement(arn, writer.prefix, account, rule_arn)
                for writer, rule_arn in zip(writers, rule_arns, strict=True)
            ]
        )

    return pulumi.Output.all(bucket_arn, account_id, *(writer.rule_arn for writer in writers)).apply(document)


class Buckets(pulumi.ComponentResource):
    """One private, encrypted, expiring bucket per declared :class:`~topology.Bucket`."""

    buckets: dict[str, aws.s3.Bucket]
    public_access_blocks: dict[str, aws.s3.BucketPublicAccessBlock]
    policies: dict[str, aws.s3.BucketPolicy]
    names: dict[str, pulumi.Output[str]]
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: BucketsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Buckets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.buckets, self.public_access_blocks, self.policies = {}, {}, {}
        self.notifications: dict[str, aws.s3.BucketNotification] = {}
        self.notify_policies: dict[str, aws.sqs.QueuePolicy] = {}
        for bucket in args.buckets:
            prefix = f"{name}-{bucket.name}"
            created = aws.s3.Bucket(
                prefix,
                bucket=_physical_name(args.stage, bucket.name, args.account_id),
                force_destroy=args.force_destroy,
                opts=child,
            )
            self.buckets[bucket.name] = created
            block = aws.s3.BucketPublicAccessBlock(
                f"{prefix}-public-access",
                bucket=created.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            )
            self.public_access_blocks[bucket.name] = block
            aws.s3.BucketOwnershipControls(
                f"{prefix}-ownership",
                bucket=created.id,
                rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
                opts=child,
            )
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{prefix}-encryption",
                bucket=created.id,
                rules=[_encryption_rule(args.kms_key_arn)],
                opts=child,
            )
            if bucket.versioned:
                aws.s3.BucketVersioning(
                    f"{prefix}-versioning",
                    bucket=created.id,
                    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                        status="Enabled"
                    ),
                    opts=child,
                )
            if bucket.expire_after_days is not None:
                aws.s3.BucketLifecycleConfiguration(
                    f"{prefix}-lifecycle",
                    bucket=created.id,
                    rules=[
                        aws.s3.BucketLifecycleConfigurationRuleArgs(
                            id="expire-objects",
                            status="Enabled",
                            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                                days=bucket.expire_after_days
                            ),
                            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                                days_after_initiation=1
                            ),
                        )
                    ],
                    opts=child,
                )
            if bucket.notify_queue:
                self._notify(prefix, bucket, created, args)
            writers = list(args.ses_writers.get(bucket.name, ()))
            if writers:
                self.policies[bucket.name] = aws.s3.BucketPolicy(
                    f"{prefix}-policy",
                    bucket=created.id,
                    policy=_ses_policy(created.arn, args.account_id, writers),
                    # Public access is blocked before any policy exists.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
                )
        self.names = {key: b.bucket for key, b in self.buckets.items()}
        self.arns = {key: b.arn for key, b in self.buckets.items()}
        self.register_outputs({"names": self.names, "arns": self.arns})

    def _notify(self, prefix: str, bucket: Bucket, created: aws.s3.Bucket, args: BucketsArgs) -> None:
        """S3 event notifications of ``bucket`` to its queue: the queue's policy first (S3 checks
        that it may send when the notification is configured)."""
        assert bucket.notify_queue is not None
        if bucket.notify_queue not in args.notify_queues:
            raise ValueError(
                f"bucket {bucket.name!r} notifies queue {bucket.notify_queue!r}, which is not passed"
            )
        queue_arn, queue_url = args.notify_queues[bucket.notify_queue]
        policy = aws.sqs.QueuePolicy(
            f"{prefix}-notify-policy",
            queue_url=queue_url,
            policy=pulumi.Output.all(queue_arn, created.arn, args.account_id).apply(
                lambda values: policy_json([s3_notify_statement(values[0], values[1], values[2])])
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.notifications[bucket.name] = aws.s3.BucketNotification(
            f"{prefix}-notification",
            bucket=created.id,
            queues=[
                aws.s3.BucketNotificationQueueArgs(
                    queue_arn=queue_arn,
                    events=list(NOTIFY_EVENTS),
                    filter_prefix=bucket.notify_prefix or None,
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.notify_policies[bucket.name] = policy


def _encryption_rule(
    kms_key_arn: pulumi.Input[str] | None,
) -> aws.s3.BucketServerSideEncryptionConfigurationRuleArgs:
    """SSE-KMS with the stack's key and an S3 bucket key (one KMS call per bucket key, not
    per object), or SSE-S3 without a key."""
    if kms_key_arn is None:
        return aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"
            )
        )
    return aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
        ),
        bucket_key_enabled=True,
    )
