"""Pulumi mock tests of the assistant's deployment: its stack config in the functions' environment,
``bedrock:InvokeModel`` on the configured models only (nothing while Bedrock is off), and the
knowledge bucket's notifications to the indexing queue (queue policy, KMS key policy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.infra.infra_mocks import ACCOUNT, REGION, VARIANT_PREFIX, Registry
from tests.infra.stack_mocks import settled

pytestmark = [
    pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning"),
]

from infra.components import Functions, FunctionsArgs, ResourceRef  # noqa: E402
from infra.components.buckets import Buckets, BucketsArgs, bucket_name  # noqa: E402
from infra.components.encryption import KeyPolicyContext, key_policy  # noqa: E402
from infra.components.functions import bedrock_model_arns, bedrock_statements  # noqa: E402
from infra.components.packages import FunctionPackage  # noqa: E402
from shared.platform import settings  # noqa: E402
from topology import TOPOLOGY, Topology, setting_values  # noqa: E402

LAMBDA = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
BEDROCK_CONFIG = {
    "assistant": "bedrock",
    "assistantModelId": HAIKU,
    "embeddingModelId": TITAN,
    "assistantMinConfidence": "0.6",
}
ASSISTANT_FUNCTIONS = ("routing", "knowledge-index")


def statements(policy: str) -> list[dict[str, Any]]:
    found = json.loads(policy)["Statement"]
    return found if isinstance(found, list) else [found]


def bedrock_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in found if any(str(a).startswith("bedrock:") for a in _as_list(s["Action"]))]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def assistant_functions(tmp_path: Path, prefix: str, config: dict[str, str]) -> Functions:
    fns = tuple(TOPOLOGY.function(name) for name in ASSISTANT_FUNCTIONS)
    topology = Topology(
        bus=TOPOLOGY.bus,
        tables=TOPOLOGY.tables,
        queues=TOPOLOGY.queues,
        rules=(),
        secrets=TOPOLOGY.secrets,
        functions=fns,
        buckets=TOPOLOGY.buckets,
    )
    keys = {(g.kind, g.resource) for fn in fns for g in fn.grants} | {
        ("queue", fn.queue) for fn in fns if fn.queue
    }
    resources = {
        key: ResourceRef(
            physical=f"omni-{prefix}-{key[1]}", arn=f"arn:aws:test:{REGION}:{ACCOUNT}:{key[0]}/{key[1]}"
        )
        for key in keys
    }
    archive = FunctionPackage(pulumi.FileArchive(str(tmp_path)), code_sha256="x")
    return Functions(
        f"{VARIANT_PREFIX}{prefix}",
        FunctionsArgs(
            topology=topology,
            stage=prefix,
            packages={name: archive for name in ASSISTANT_FUNCTIONS},
            layer_arns=[],
            resources=resources,  # type: ignore[arg-type]
            region=REGION,
            account_id=ACCOUNT,
            stack_config=config,
        ),
    )


def role_policy(registry: Registry, function_name: str) -> list[dict[str, Any]]:
    function = registry.one(LAMBDA, name=function_name)
    role = next(r for r in registry.of_type(ROLE) if r.arn == function.inputs["role"])
    return statements(registry.one(ROLE_POLICY, role=role.id).inputs["policy"])


@pulumi.runtime.test
def test_with_bedrock_the_roles_may_invoke_exactly_the_configured_models(
    tmp_path: Path,
) -> pulumi.Output[None]:
    functions = assistant_functions(tmp_path, "bedrock", BEDROCK_CONFIG)

    def check(all_registered: Registry) -> None:
        registry = all_registered.variant(f"{VARIANT_PREFIX}bedrock")
        routing = bedrock_of(role_policy(registry, "omni-bedrock-routing"))
        assert routing == [
            {
                "Sid": "InvokeBedrockModels",
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel"],
                "Resource": [
                    f"arn:aws:bedrock:{REGION}::foundation-model/{HAIKU}",
                    f"arn:aws:bedrock:{REGION}::foundation-model/{TITAN}",
                ],
            }
        ]
        indexer = bedrock_of(role_policy(registry, "omni-bedrock-knowledge-index"))
        assert indexer == [
            {
                "Sid": "InvokeBedrockModels",
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel"],
                "Resource": [f"arn:aws:bedrock:{REGION}::foundation-model/{TITAN}"],
            }
        ]
        env = registry.one(LAMBDA, name="omni-bedrock-routing").inputs["environment"]["variables"]
        assert env[settings.OMNI_ASSISTANT] == "bedrock"
        assert env[settings.OMNI_ASSISTANT_MODEL_ID] == HAIKU
        assert env[settings.OMNI_EMBEDDING_MODEL_ID] == TITAN
        assert env[settings.OMNI_ASSISTANT_MIN_CONFIDENCE] == "0.6"
        assert settings.OMNI_ASSISTANT_GUARDRAIL_ID not in env
        # No other function of the stack may call Bedrock.
        others = {r.inputs["name"] for r in registry.of_type(LAMBDA)} - {
            "omni-bedrock-routing",
            "omni-bedrock-knowledge-index",
        }
        assert others == set()

    return settled(functions, check=check)


@pulumi.runtime.test
def test_without_bedrock_no_role_may_call_it(tmp_path: Path) -> pulumi.Output[None]:
    functions = assistant_functions(tmp_path, "extractive", {})

    def check(all_registered: Registry) -> None:
        registry = all_registered.variant(f"{VARIANT_PREFIX}extractive")
        for name in ASSISTANT_FUNCTIONS:
            assert bedrock_of(role_policy(registry, f"omni-extractive-{name}")) == []
        env = registry.one(LAMBDA, name="omni-extractive-routing").inputs["environment"]["variables"]
        assert env[settings.OMNI_ASSISTANT] == "extractive"

    return settled(functions, check=check)


def test_inference_profiles_and_guardrails_are_scoped_too() -> None:
    assert bedrock_model_arns("eu.anthropic.claude-3-haiku-20240307-v1:0", "eu-west-3", "123") == [
        "arn:aws:bedrock:eu-west-3:123:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ]
    routing = TOPOLOGY.function("routing")
    found = bedrock_statements(
        routing, {**BEDROCK_CONFIG, "assistantGuardrailId": "gr-1"}, "eu-west-3", "123"
    )
    assert [(s["Action"], s["Resource"]) for s in found] == [
        (
            ["bedrock:InvokeModel"],
            [
                f"arn:aws:bedrock:eu-west-3::foundation-model/{HAIKU}",
                f"arn:aws:bedrock:eu-west-3::foundation-model/{TITAN}",
            ],
        ),
        (["bedrock:ApplyGuardrail"], ["arn:aws:bedrock:eu-west-3:123:guardrail/gr-1"]),
    ]
    assert setting_values(routing)[settings.OMNI_ASSISTANT] == "extractive"


@pulumi.runtime.test
def test_the_knowledge_bucket_notifies_the_index_queue_which_only_s3_of_that_bucket_may_send_to() -> (
    pulumi.Output[None]
):
    prefix = f"{VARIANT_PREFIX}kb"
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:omni-kb-knowledge-index"
    queue_url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/omni-kb-knowledge-index"
    buckets = Buckets(
        prefix,
        BucketsArgs(
            buckets=[TOPOLOGY.bucket("knowledge")],
            stage="kb",
            account_id=ACCOUNT,
            notify_queues={"knowledge-index": (queue_arn, queue_url)},
        ),
    )

    def check(all_registered: Registry) -> None:
        registry = all_registered.variant(prefix)
        bucket_arn = f"arn:aws:s3:::{bucket_name('kb', 'knowledge', ACCOUNT)}"
        [policy] = registry.of_type(QUEUE_POLICY)
        assert policy.inputs["queueUrl"] == queue_url
        assert statements(policy.inputs["policy"]) == [
            {
                "Sid": "S3SendsBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": bucket_arn},
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                },
            }
        ]
        [notification] = registry.of_type(NOTIFICATION)
        assert notification.inputs["queues"] == [
            {
                "queueArn": queue_arn,
                "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                "filterPrefix": "articles/",
            }
        ]

    return settled(buckets, check=check)


def test_s3_may_use_the_key_for_the_notifying_bucket_only() -> None:
    context = KeyPolicyContext(
        account_id=ACCOUNT, region=REGION, stage="kb", bus_name="omni-kb-events", notifying_buckets=("b-1",)
    )
    [found] = [s for s in key_policy(context) if s["Principal"] == {"Service": "s3.amazonaws.com"}]
    assert found["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert found["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": ["arn:aws:s3:::b-1"]},
    }
    without = KeyPolicyContext(account_id=ACCOUNT, region=REGION, stage="kb", bus_name="omni-kb-events")
    assert not [s for s in key_policy(without) if s["Principal"] == {"Service": "s3.amazonaws.com"}]
