"""SQS queues, each with its dead-letter queue; encrypted at rest with the stack's KMS key
(SQS-managed keys without one). A queue reuses a data key for an hour, so KMS is asked
about once per hour per queue and principal, not once per message."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, physical_name
from topology import Queue


@dataclass(frozen=True)
class QueuesArgs:
    queues: Sequence[Queue]
    stage: str
    #: The customer-managed key of the queues and DLQs (None: SQS-managed encryption).
    kms_key_arn: pulumi.Input[str] | None = None
    #: Seconds a queue reuses a data key (with a KMS key only).
    data_key_reuse_s: int = 3600


def redrive_policy(dlq_arn: str, max_receive_count: int) -> str:
    return json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})


class Queues(pulumi.ComponentResource):
    """One queue plus dead-letter queue per declared :class:`~topology.Queue`."""

    queues: dict[str, aws.sqs.Queue]
    dlqs: dict[str, aws.sqs.Queue]
    arns: dict[str, pulumi.Output[str]]
    urls: dict[str, pulumi.Output[str]]
    dlq_urls: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: QueuesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Queues", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.queues, self.dlqs = {}, {}
        encryption = _encryption(args)
        for queue in args.queues:
            dlq = aws.sqs.Queue(
                f"{name}-{queue.dlq_name}",
                name=physical_name(args.stage, queue.dlq_name),
                message_retention_seconds=queue.dlq_retention_s,
                **encryption,
                opts=child,
            )
            self.dlqs[queue.name] = dlq
            self.queues[queue.name] = aws.sqs.Queue(
                f"{name}-{queue.name}",
                name=physical_name(args.stage, queue.name),
                visibility_timeout_seconds=queue.visibility_timeout_s,
                message_retention_seconds=queue.retention_s,
                redrive_policy=dlq.arn.apply(
                    functools.partial(redrive_policy, max_receive_count=queue.max_receive_count)
                ),
                **encryption,
                opts=child,
            )
        self.arns = {key: q.arn for key, q in self.queues.items()}
        self.urls = {key: q.url for key, q in self.queues.items()}
        self.dlq_urls = {key: q.url for key, q in self.dlqs.items()}
        self.register_outputs({"urls": self.urls, "dlq_urls": self.dlq_urls})


def _encryption(args: QueuesArgs) -> dict[str, Any]:
    if args.kms_key_arn is None:
        return {"sqs_managed_sse_enabled": True}
    return {
        "kms_master_key_id": args.kms_key_arn,
        "kms_data_key_reuse_period_seconds": args.data_key_reuse_s,
    }
