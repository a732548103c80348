"""The SES send grant: declared in the topology, scoped to the configured identity (and
configuration set), required config when granted, known to the local runtime.

The whole stack's policies (every function's role grants exactly its declared access,
the e-mail identity included) are checked by ``test_infra_stack.py``; these tests cover
the pieces without Pulumi's engine: the policy statements, the settings, the topology.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pulumi
import pytest

from infra.components.functions import execution_policy
from infra.settings import StackSettings, email_identity_settings
from topology import (
    TOPOLOGY,
    EmailIdentity,
    Grant,
    function_environment,
    iam_actions,
    validate,
)

REGION, ACCOUNT = "eu-west-3", "123456789012"
IDENTITY_ARN = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/shop.example"
CONFIG_SET_ARN = f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/omni-outbound"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/omni-test-notify"

NOTIFY = TOPOLOGY.function("notify")


def _arns(identity_arns: list[str] | str) -> dict[Any, Any]:
    arns: dict[Any, Any] = {}
    for grant in NOTIFY.grants:
        arns[(grant.kind, grant.resource)] = f"arn:aws:test:::{grant.kind}/{grant.resource}"
    arns[("queue", "notify")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:omni-test-notify"
    arns[("email-identity", "sender")] = identity_arns
    return arns


def _ses_statements(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if any(str(a).startswith("ses:") for a in s["Action"])]


def test_notify_is_granted_sending_from_the_sender_identity_only() -> None:
    assert Grant("email-identity", "sender", "send") in NOTIFY.grants
    assert iam_actions(Grant("email-identity", "sender", "send")) == ("ses:SendEmail", "ses:SendRawEmail")
    # Nobody else may send e-mail.
    others = [fn.name for fn in TOPOLOGY.functions if fn is not NOTIFY]
    assert not [name for name in others for g in TOPOLOGY.function(name).grants if g.kind == "email-identity"]


def test_policy_names_the_identity_arn_and_no_wildcard() -> None:
    statements = execution_policy(NOTIFY, _arns(IDENTITY_ARN), LOG_GROUP_ARN)
    ses = _ses_statements(statements)
    assert len(ses) == 1
    assert ses[0]["Action"] == ["ses:SendEmail", "ses:SendRawEmail"]
    assert ses[0]["Resource"] == [IDENTITY_ARN]
    assert ses[0]["Effect"] == "Allow"
    for statement in statements:
        assert all("*" not in action for action in statement["Action"])


def test_policy_with_a_configuration_set_names_both_arns() -> None:
    ses = _ses_statements(execution_policy(NOTIFY, _arns([IDENTITY_ARN, CONFIG_SET_ARN]), LOG_GROUP_ARN))
    assert ses[0]["Resource"] == [IDENTITY_ARN, CONFIG_SET_ARN]


def test_an_undefined_access_on_an_email_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="not defined"):
        iam_actions(Grant("email-identity", "sender", "readwrite"))
    broken = dataclasses.replace(
        TOPOLOGY,
        functions=tuple(
            dataclasses.replace(fn, grants=(*fn.grants, Grant("email-identity", "sender", "get")))
            if fn.name == "notify"
            else fn
            for fn in TOPOLOGY.functions
        ),
    )
    assert "function 'notify': 'get' is not defined for a email-identity" in validate(broken)


def test_validate_knows_declared_and_unknown_identities() -> None:
    assert not [p for p in validate(TOPOLOGY) if "email" in p and "identit" in p]
    without = dataclasses.replace(TOPOLOGY, email_identities=())
    assert "function 'notify' is granted unknown email-identity 'sender'" in validate(without)
    doubled = dataclasses.replace(TOPOLOGY, email_identities=TOPOLOGY.email_identities * 2)
    assert "duplicate email identity name 'sender'" in validate(doubled)


def test_the_function_learns_the_identity_from_its_environment() -> None:
    physical: dict[Any, str] = {(g.kind, g.resource): f"{g.kind}-{g.resource}" for g in NOTIFY.grants}
    physical[("email-identity", "sender")] = "shop.example"
    env = function_environment(TOPOLOGY, NOTIFY, physical, "test")
    assert env["SENDER_EMAIL_IDENTITY"] == "shop.example"
    assert "EVENT_BUS_NAME" not in env


def _config(namespace: str, values: dict[str, str]) -> pulumi.Config:
    for key, value in values.items():
        pulumi.runtime.set_config(f"{namespace}:{key}", value)
    return pulumi.Config(namespace)


def test_the_identity_is_required_config_when_granted() -> None:
    with pytest.raises(pulumi.ConfigMissingError, match="emailSenderIdentity"):
        email_identity_settings(TOPOLOGY, _config("omni-ses-missing", {}))


def test_an_identity_nobody_is_granted_need_not_be_configured() -> None:
    topology = dataclasses.replace(TOPOLOGY, functions=(TOPOLOGY.function("webchat"),))
    assert email_identity_settings(topology, _config("omni-ses-ungranted", {})) == {
        "email_identities": {},
        "email_configuration_sets": {},
    }


def test_identity_and_configuration_set_come_from_config() -> None:
    config = _config(
        "omni-ses-configured",
        {"emailSenderIdentity": " Support@Shop.Example ", "emailConfigurationSet": "omni-outbound"},
    )
    assert email_identity_settings(TOPOLOGY, config) == {
        "email_identities": {"sender": "support@shop.example"},
        "email_configuration_sets": {"sender": "omni-outbound"},
    }


@pytest.mark.parametrize("identity", ["*", "*.shop.example", "shop", "a b@shop.example", "support@"])
def test_a_wildcard_or_malformed_identity_is_refused(identity: str) -> None:
    with pytest.raises(ValueError, match="not an e-mail address or domain"):
        StackSettings(stage="dev", secret_values={}, email_identities={"sender": identity})


def test_a_malformed_configuration_set_is_refused() -> None:
    with pytest.raises(ValueError, match="configuration set"):
        StackSettings(
            stage="dev",
            secret_values={},
            email_identities={"sender": "shop.example"},
            email_configuration_sets={"sender": "a/b"},
        )


def test_local_provisioning_maps_the_identity_without_creating_anything(
    stack: dict[tuple[str, str], str],
) -> None:
    identity = TOPOLOGY.email_identity("sender")
    assert isinstance(identity, EmailIdentity)
    assert stack[("email-identity", "sender")] == identity.local_default == "example.com"
    # The conftest fixture exported every function's environment, notify's included.
    assert os.environ["SENDER_EMAIL_IDENTITY"] == "example.com"
