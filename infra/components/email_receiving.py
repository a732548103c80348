"""Amazon SES receiving: a receipt rule set with one rule per function with an e-mail trigger.

Each rule first stores the raw mail in the function's bucket under the trigger's prefix
(S3 action, position 1), then invokes the function asynchronously (Lambda action,
position 2, invocation type ``Event``: Lambda retries a failed invocation twice). SES
may invoke the function for this rule only (``source_account`` and ``source_arn``).

The rules match the addresses or domains of the ``emailRecipients`` config; without
any, no rule set is created (the bucket is, ready for it). An account has one *active*
receipt rule set per region: ours is activated only when ``activateReceiptRuleSet`` is
true, because activating it deactivates whichever set is active now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.buckets import SesWriter
from infra.components.common import TYPE_PREFIX, physical_name
from topology import Function, Topology


def rule_set_name(stage: str) -> str:
    return physical_name(stage, "email")


def rule_name(stage: str, fn: Function) -> str:
    return physical_name(stage, fn.name)


def receipt_rule_arn(region: str, account_id: str, rule_set: str, rule: str) -> str:
    """The ARN SES presents as ``aws:SourceArn`` when a receipt rule acts."""
    return f"arn:aws:ses:{region}:{account_id}:receipt-rule-set/{rule_set}:receipt-rule/{rule}"


def rule_arn_output(
    region: pulumi.Input[str], account_id: pulumi.Input[str], rule_set: str, rule: str
) -> pulumi.Output[str]:
    return pulumi.Output.all(region, account_id).apply(
        lambda values: receipt_rule_arn(values[0], values[1], rule_set, rule)
    )


def email_functions(topology: Topology) -> list[Function]:
    return [fn for fn in topology.functions if fn.email is not None]


def ses_writers(
    topology: Topology, stage: str, region: pulumi.Input[str], account_id: pulumi.Input[str]
) -> dict[str, list[SesWriter]]:
    """By declared bucket name: the receipt rules that will store mail in it."""
    writers: dict[str, list[SesWriter]] = {}
    for fn in email_functions(topology):
        assert fn.email is not None
        arn = rule_arn_output(region, account_id, rule_set_name(stage), rule_name(stage, fn))
        writers.setdefault(fn.email.bucket, []).append(SesWriter(prefix=fn.email.prefix, rule_arn=arn))
    return writers


@dataclass(frozen=True)
class EmailReceivingArgs:
    topology: Topology
    stage: str
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    #: Deployed function ARNs and names, by declared function name.
    function_arns: Mapping[str, pulumi.Input[str]]
    function_names: Mapping[str, pulumi.Input[str]]
    #: Deployed bucket names by declared bucket name, and what must exist before SES writes.
    bucket_names: Mapping[str, pulumi.Input[str]]
    bucket_policies: Mapping[str, pulumi.Resource]
    #: Addresses (``support@example.com``) or domains (``example.com``, ``.example.com``) received.
    recipients: Sequence[str] = ()
    activate: bool = False


class EmailReceiving(pulumi.ComponentResource):
    """The receipt rule set, its rules, SES's permission to invoke, and (optionally) activation."""

    rule_set: aws.ses.ReceiptRuleSet | None
    rules: dict[str, aws.ses.ReceiptRule]
    permissions: dict[str, aws.lambda_.Permission]
    active: aws.ses.ActiveReceiptRuleSet | None

    def __init__(
        self, name: str, args: EmailReceivingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:EmailReceiving", name, None, opts)
        self.rule_set, self.rules, self.permissions, self.active = None, {}, {}, None
        functions = email_functions(args.topology)
        if not args.recipients or not functions:
            if args.activate:
                pulumi.log.warn(
                    "activateReceiptRuleSet is set but emailRecipients is empty: nothing to activate"
                )
            self.register_outputs({})
            return
        child = pulumi.ResourceOptions(parent=self)
        set_name = rule_set_name(args.stage)
        self.rule_set = aws.ses.ReceiptRuleSet(f"{name}-rule-set", rule_set_name=set_name, opts=child)
        previous: aws.ses.ReceiptRule | None = None
        for fn in functions:
            assert fn.email is not None
            rule = rule_name(args.stage, fn)
            permission = aws.lambda_.Permission(
                f"{name}-{fn.name}-ses-invoke",
                action="lambda:InvokeFunction",
                function=args.function_names[fn.name],
                principal="ses.amazonaws.com",
                source_account=args.account_id,
                source_arn=rule_arn_output(args.region, args.account_id, set_name, rule),
                opts=child,
            )
            self.permissions[fn.name] = permission
            # SES checks that it may write and invoke when the rule is created.
            depends: list[pulumi.Resource] = [permission]
            if fn.email.bucket in args.bucket_policies:
                depends.append(args.bucket_policies[fn.email.bucket])
            self.rules[fn.name] = previous = aws.ses.ReceiptRule(
                f"{name}-{fn.name}-rule",
                name=rule,
                rule_set_name=self.rule_set.rule_set_name,
                after=previous.name if previous is not None else None,
                recipients=list(args.recipients),
                enabled=True,
                scan_enabled=True,
                tls_policy="Optional",
                s3_actions=[
                    aws.ses.ReceiptRuleS3ActionArgs(
                        bucket_name=args.bucket_names[fn.email.bucket],
                        object_key_prefix=fn.email.prefix,
                        position=1,
                    )
                ],
                lambda_actions=[
                    aws.ses.ReceiptRuleLambdaActionArgs(
                        function_arn=args.function_arns[fn.name],
                        invocation_type="Event",
                        position=2,
                    )
                ],
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        if args.activate:
            self.active = aws.ses.ActiveReceiptRuleSet(
                f"{name}-active",
                rule_set_name=self.rule_set.rule_set_name,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.rules.values())),
            )
        self.register_outputs({"rule_set_name": self.rule_set.rule_set_name})
