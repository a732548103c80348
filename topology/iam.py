"""Permissions: the only place where grants become IAM actions."""

from __future__ import annotations

from topology.model import Access, Grant, ResourceKind

_TABLE_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
_TABLE_WRITE = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
#: What an SQS event source mapping needs from the consuming function's role.
QUEUE_CONSUMER_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)

#: The IAM actions of each (kind, access) a grant may name.
ACTIONS: dict[tuple[ResourceKind, Access], tuple[str, ...]] = {
    ("table", "read"): _TABLE_READ,
    ("table", "write"): _TABLE_WRITE,
    ("table", "readwrite"): tuple(dict.fromkeys(_TABLE_READ + _TABLE_WRITE)),
    ("bus", "publish"): ("events:PutEvents",),
    ("queue", "send"): ("sqs:SendMessage",),
    ("secret", "get"): ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"),
    ("bucket", "read"): ("s3:GetObject",),
    ("bucket", "write"): ("s3:PutObject",),
    # SES v2 SendEmail (simple, raw or template content) is authorised as ses:SendEmail;
    # ses:SendRawEmail covers the v1 raw API on the same identity.
    ("email-identity", "send"): ("ses:SendEmail", "ses:SendRawEmail"),
    # Post to, look up and close the connections of a WebSocket API's stage.
    ("websocket", "manage"): ("execute-api:ManageConnections",),
}


def iam_actions(grant: Grant) -> tuple[str, ...]:
    try:
        return ACTIONS[(grant.kind, grant.access)]
    except KeyError:
        raise ValueError(f"access {grant.access!r} is not defined for a {grant.kind}") from None
