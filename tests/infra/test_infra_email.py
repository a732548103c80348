"""Pulumi mock tests of e-mail receiving: the inbound bucket, the SES receipt rule, permissions.

The stack is built in a child process (like ``test_infra_entrypoint``) so that its
resources do not mix with the main stack the other mock tests inspect, from the
e-mail function's part of the topology, once with ``emailRecipients`` and
``activateReceiptRuleSet`` set and once without. The child prints what the mocks
registered; the checks run here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.components.buckets import bucket_name as cloud_bucket_name
from infra.settings import StackSettings, parse_recipients
from omni.local.provision import bucket_name as local_bucket_name
from tests.helpers import REPO_ROOT
from tests.infra.infra_mocks import ACCOUNT, REGION
from topology import TOPOLOGY

HERE = Path(__file__).resolve().parent

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
RULE_SET = "aws:ses/receiptRuleSet:ReceiptRuleSet"
RULE = "aws:ses/receiptRule:ReceiptRule"
ACTIVE = "aws:ses/activeReceiptRuleSet:ActiveReceiptRuleSet"
PERMISSION = "aws:lambda/permission:Permission"
LAMBDA = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
KEY = "aws:kms/key:Key"

EMAIL = TOPOLOGY.function("email")
BUCKET_NAME = f"omni-test-inbound-email-{ACCOUNT}"
RULE_ARN = f"arn:aws:ses:{REGION}:{ACCOUNT}:receipt-rule-set/omni-test-email:receipt-rule/omni-test-email"

_PROGRAM = """
import dataclasses, json, sys
from pathlib import Path

root, tests, build, extra_config = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
sys.path[:0] = [root, tests]

import pulumi
from infra_mocks import PROJECT, STACK, RecordingMocks

mocks = RecordingMocks()
pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False)
from topology import TOPOLOGY

secrets = {f"omni:{secret.config_key}": "secret-value" for secret in TOPOLOGY.secrets}
pulumi.runtime.set_all_config({**secrets, **extra_config}, secret_keys=list(secrets))

from infra.settings import StackSettings
from infra.stack import build_stack, stack_outputs
from tests.helpers import REPO_ROOT

# The e-mail function alone (other channels' code need not exist for this test).
topology = dataclasses.replace(
    TOPOLOGY, functions=(TOPOLOGY.function("email"),), queues=(), rules=()
)


def fake_installer(requirements, target):
    target.mkdir(parents=True)
    (target / "dependency.py").write_text("")


def custom_urns(roots):
    pending, urns = list(roots), []
    while pending:
        resource = pending.pop()
        for child in resource._childResources:
            if isinstance(child, pulumi.CustomResource):
                urns.append(child.urn)
            pending.append(child)
    return urns


@pulumi.runtime.test
def run():
    settings = dataclasses.replace(StackSettings.from_config(topology), build_dir=build)
    stack = build_stack(settings, topology=topology, layer_installer=fake_installer)
    roots = [v for v in vars(stack).values() if isinstance(v, pulumi.ComponentResource)]
    outputs = pulumi.Output.from_input(stack_outputs(stack))

    def dump(values):
        registered = [
            {"typ": r.typ, "name": r.name, "id": r.id, "inputs": r.inputs, "state": r.state}
            for r in mocks.registry().resources
        ]
        print(json.dumps({"outputs": values[-1], "resources": registered}, default=str))

    return pulumi.Output.all(*custom_urns(roots), outputs).apply(dump)


run()
"""


class Registry:
    def __init__(self, dumped: dict[str, Any]) -> None:
        self.outputs: dict[str, Any] = dumped["outputs"]
        self.resources: list[dict[str, Any]] = dumped["resources"]

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["typ"] == typ]

    def one(self, typ: str, **inputs: Any) -> dict[str, Any]:
        found = [r for r in self.of_type(typ) if all(r["inputs"].get(k) == v for k, v in inputs.items())]
        assert len(found) == 1, f"expected one {typ} with {inputs}, found {len(found)}"
        return found[0]


def build(tmp_path: Path, config: dict[str, str]) -> Registry:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROGRAM,
            str(REPO_ROOT),
            str(HERE),
            str(tmp_path / "build"),
            json.dumps(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return Registry(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def receiving(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return build(
        tmp_path_factory.mktemp("receiving"),
        {
            "omni:emailRecipients": '["support@shop.example", "shop.example"]',
            "omni:activateReceiptRuleSet": "true",
        },
    )


@pytest.fixture(scope="module")
def bucket_only(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return build(tmp_path_factory.mktemp("bucket-only"), {})


def statements(policy: str) -> list[dict[str, Any]]:
    found = json.loads(policy)["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --------------------------------------------------------------------------- #
def test_inbound_bucket_is_private_encrypted_and_expiring(receiving: Registry) -> None:
    bucket = receiving.one(BUCKET, bucket=BUCKET_NAME)
    assert bucket["inputs"]["bucket"] == BUCKET_NAME
    assert bucket["inputs"]["forceDestroy"] is False  # deletionProtection defaults to on
    assert receiving.one(PUBLIC_ACCESS, bucket=bucket["id"])["inputs"] == {
        "bucket": bucket["id"],
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    ownership = receiving.one(OWNERSHIP, bucket=bucket["id"])
    assert ownership["inputs"]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    [sse] = receiving.one(ENCRYPTION, bucket=bucket["id"])["inputs"]["rules"]
    # SSE-KMS with the stack's key, and an S3 bucket key (one KMS call per bucket key, not per mail).
    assert sse["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": receiving.one(KEY)["state"]["arn"],
    }
    assert sse["bucketKeyEnabled"] is True
    [rule] = receiving.one(LIFECYCLE, bucket=bucket["id"])["inputs"]["rules"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": ""}
    assert rule["expiration"] == {"days": TOPOLOGY.bucket("inbound-email").expire_after_days} == {"days": 30}
    assert receiving.outputs["bucketNames"] == {"inbound-email": BUCKET_NAME}


def test_only_the_stacks_receipt_rule_may_write_and_only_under_the_prefix(receiving: Registry) -> None:
    bucket = receiving.one(BUCKET, bucket=BUCKET_NAME)
    [statement] = statements(receiving.one(BUCKET_POLICY, bucket=bucket["id"])["inputs"]["policy"])
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert as_list(statement["Action"]) == ["s3:PutObject"]
    assert as_list(statement["Resource"]) == [f"arn:aws:s3:::{BUCKET_NAME}/inbound/*"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": RULE_ARN}
    }


def test_ses_may_use_the_key_for_the_stacks_receipt_rule_only(receiving: Registry) -> None:
    key = receiving.one(KEY)
    [ses] = [
        s for s in statements(key["inputs"]["policy"]) if s["Principal"] == {"Service": "ses.amazonaws.com"}
    ]
    assert sorted(as_list(ses["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert ses["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": [RULE_ARN]},
    }


def test_receipt_rule_stores_the_mail_then_invokes_the_function_asynchronously(receiving: Registry) -> None:
    rule_set = receiving.one(RULE_SET)
    assert rule_set["inputs"]["ruleSetName"] == "omni-test-email"
    rule = receiving.one(RULE)
    function = receiving.one(LAMBDA, name="omni-test-email")
    assert rule["state"]["arn"] == RULE_ARN  # what the bucket policy and the permission name
    inputs = rule["inputs"]
    assert inputs["name"] == "omni-test-email"
    assert inputs["ruleSetName"] == "omni-test-email"
    assert inputs["recipients"] == ["support@shop.example", "shop.example"]
    assert (inputs["enabled"], inputs["scanEnabled"]) == (True, True)
    assert inputs["s3Actions"] == [{"bucketName": BUCKET_NAME, "objectKeyPrefix": "inbound/", "position": 1}]
    assert inputs["lambdaActions"] == [
        {"functionArn": function["state"]["arn"], "invocationType": "Event", "position": 2}
    ]
    assert receiving.one(ACTIVE)["inputs"] == {"ruleSetName": "omni-test-email"}
    assert receiving.outputs["receiptRuleSetName"] == "omni-test-email"


def test_ses_may_invoke_the_email_function_for_this_rule_only(receiving: Registry) -> None:
    [permission] = receiving.of_type(PERMISSION)
    assert permission["inputs"] == {
        "action": "lambda:InvokeFunction",
        "function": "omni-test-email",
        "principal": "ses.amazonaws.com",
        "sourceAccount": ACCOUNT,
        "sourceArn": RULE_ARN,
    }


def test_the_email_function_may_read_the_buckets_objects_only(receiving: Registry) -> None:
    function = receiving.one(LAMBDA, name="omni-test-email")
    role = next(r for r in receiving.of_type(ROLE) if r["state"]["arn"] == function["inputs"]["role"])
    policy = receiving.one(ROLE_POLICY, role=role["id"])
    s3 = [
        s
        for s in statements(policy["inputs"]["policy"])
        if any(a.startswith("s3:") for a in as_list(s["Action"]))
    ]
    assert [(as_list(s["Action"]), as_list(s["Resource"])) for s in s3] == [
        (["s3:GetObject"], [f"arn:aws:s3:::{BUCKET_NAME}/*"])
    ]
    # ... and decrypt them with the stack's key, through the services of its grants only
    # (it reads the bucket and a table, and publishes to the bus: it generates data keys too).
    [kms] = [s for s in statements(policy["inputs"]["policy"]) if s["Sid"] == "UseStackKey"]
    assert (kms["Action"], kms["Resource"]) == (
        ["kms:Decrypt", "kms:GenerateDataKey"],
        [receiving.one(KEY)["state"]["arn"]],
    )
    assert kms["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [
                f"{service}.{REGION}.amazonaws.com" for service in ("dynamodb", "events", "s3")
            ]
        }
    }
    env = function["inputs"]["environment"]["variables"]
    assert env["INBOUND_EMAIL_BUCKET"] == BUCKET_NAME
    assert env["INBOUND_EMAIL_PREFIX"] == EMAIL.email.prefix == "inbound/"  # type: ignore[union-attr]


def test_without_recipients_the_bucket_waits_for_a_rule(bucket_only: Registry) -> None:
    bucket = bucket_only.one(BUCKET, bucket=BUCKET_NAME)
    assert bucket["inputs"]["bucket"] == BUCKET_NAME
    assert bucket_only.one(BUCKET_POLICY, bucket=bucket["id"])
    for typ in (RULE_SET, RULE, ACTIVE, PERMISSION):
        assert bucket_only.of_type(typ) == [], typ
    assert "receiptRuleSetName" not in bucket_only.outputs
    assert bucket_only.outputs["bucketNames"] == {"inbound-email": BUCKET_NAME}


# --------------------------------------------------------------------------- #
def test_local_and_cloud_name_buckets_alike() -> None:
    for stage in ("test", "Prod_EU", "dev-2"):
        assert local_bucket_name(stage, "inbound-email", ACCOUNT) == cloud_bucket_name(
            stage, "inbound-email", ACCOUNT
        )
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        cloud_bucket_name("x" * 23, "inbound-email-with-a-long-name", ACCOUNT)


def test_email_settings() -> None:
    assert parse_recipients(None) == ()
    assert parse_recipients('["Support@Shop.example", " .shop.example "]') == (
        "support@shop.example",
        ".shop.example",
    )
    assert parse_recipients("a@x.example, x.example") == ("a@x.example", "x.example")
    with pytest.raises(ValueError, match="JSON list"):
        parse_recipients("[not json")
    settings = StackSettings(stage="dev", secret_values={}, email_recipients=("shop.example",))
    assert settings.activate_receipt_rule_set is False
    with pytest.raises(ValueError, match="emailRecipients"):
        StackSettings(stage="dev", secret_values={}, email_recipients=("not an address",))
