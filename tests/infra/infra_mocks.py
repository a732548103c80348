"""Pulumi mocks that record every resource the program registers (no CLI, no plugin, no AWS).

Each mocked resource gets the outputs the real provider computes in the shape AWS
gives them (ARNs, queue URLs, the API's execution ARN, ...), so the program's policies
and wiring can be checked against the ARNs of the resources they should point at.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

ACCOUNT = "123456789012"
REGION = "eu-west-3"
STACK = "test"
PROJECT = "omni"

#: Pulumi names of the resources that tests create besides the main stack start with this.
VARIANT_PREFIX = "variant-"


@dataclass(frozen=True)
class Registered:
    typ: str
    #: Pulumi resource name (``functions-webchat-role``).
    name: str
    id: str
    inputs: dict[str, Any]
    #: Inputs plus the outputs the mock computed (``arn``, ``url``, ...).
    state: dict[str, Any]

    @property
    def arn(self) -> str:
        return str(self.state["arn"])


@dataclass
class Registry:
    """What the mocks saw, with the look-ups the tests need."""

    resources: list[Registered] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def where(self, typ: str, **inputs: Any) -> list[Registered]:
        return [r for r in self.of_type(typ) if all(r.inputs.get(k) == v for k, v in inputs.items())]

    def one(self, typ: str, **inputs: Any) -> Registered:
        found = self.where(typ, **inputs)
        assert len(found) == 1, f"expected one {typ} with {inputs}, found {len(found)}"
        return found[0]

    def main(self) -> Registry:
        """Only the resources of the main stack (not of the variants some tests build)."""
        return Registry([r for r in self.resources if not r.name.startswith(VARIANT_PREFIX)])

    def variant(self, prefix: str) -> Registry:
        return Registry([r for r in self.resources if r.name.startswith(prefix)])


def _arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


@dataclass
class _New:
    """A resource being registered: its inputs, the state the mock fills in, its physical name."""

    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    physical: str
    #: How many resources were registered before it (for unique generated ids).
    count: int


def _table(r: _New) -> str:
    r.state["arn"] = _arn("dynamodb", f"table/{r.physical}")
    return r.physical


def _queue(r: _New) -> str:
    rid = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{r.physical}"
    r.state.update(url=rid, arn=_arn("sqs", r.physical))
    return rid


def _event_bus(r: _New) -> str:
    r.state["arn"] = _arn("events", f"event-bus/{r.physical}")
    return r.physical


def _event_rule(r: _New) -> str:
    r.state["arn"] = _arn("events", f"rule/{r.inputs['eventBusName']}/{r.physical}")
    return f"{r.name}-id"


def _event_archive(r: _New) -> str:
    r.state["arn"] = _arn("events", f"archive/{r.physical}")
    return f"{r.name}-id"


def _secret(r: _New) -> str:
    r.state["arn"] = _arn("secretsmanager", f"secret:{r.physical}-Ab12Cd")
    return str(r.state["arn"])


def _role(r: _New) -> str:
    r.state["name"] = r.physical
    r.state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{r.physical}"
    return r.physical


def _log_group(r: _New) -> str:
    r.state["arn"] = _arn("logs", f"log-group:{r.physical}")
    return r.physical


def _function(r: _New) -> str:
    r.state["arn"] = _arn("lambda", f"function:{r.physical}")
    r.state["invokeArn"] = (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{r.state['arn']}/invocations"
    )
    return r.physical


def _layer_version(r: _New) -> str:
    r.state["arn"] = _arn("lambda", f"layer:{r.inputs['layerName']}:1")
    return str(r.state["arn"])


def _api(r: _New) -> str:
    rid = f"api{r.count}"
    r.state["apiEndpoint"] = f"https://{rid}.execute-api.{REGION}.amazonaws.com"
    r.state["executionArn"] = _arn("execute-api", rid)
    return rid


def _stage(r: _New) -> str:
    r.state["invokeUrl"] = f"https://{r.inputs['apiId']}.execute-api.{REGION}.amazonaws.com/"
    return f"{r.name}-id"


def _user_pool(r: _New) -> str:
    rid = f"{REGION}_Pool{r.count}"
    r.state["arn"] = _arn("cognito-idp", f"userpool/{rid}")
    r.state["endpoint"] = f"cognito-idp.{REGION}.amazonaws.com/{rid}"
    return rid


def _schedule(r: _New) -> str:
    r.state["arn"] = _arn("scheduler", f"schedule/default/{r.physical}")
    return f"{r.name}-id"


def _bucket(r: _New) -> str:
    rid = r.state["bucket"] = str(r.inputs.get("bucket") or f"{r.name}-a1b2c3d")
    r.state["arn"] = f"arn:aws:s3:::{rid}"
    return rid


def _receipt_rule_set(r: _New) -> str:
    rid = str(r.inputs["ruleSetName"])
    r.state["arn"] = _arn("ses", f"receipt-rule-set/{rid}")
    return rid


def _receipt_rule(r: _New) -> str:
    r.state["arn"] = _arn("ses", f"receipt-rule-set/{r.inputs['ruleSetName']}:receipt-rule/{r.physical}")
    return f"{r.name}-id"


def _kms_key(r: _New) -> str:
    rid = r.state["keyId"] = f"1234abcd-12ab-34cd-56ef-{r.count:012d}"
    r.state["arn"] = _arn("kms", f"key/{rid}")
    return rid


def _topic(r: _New) -> str:
    r.state["arn"] = _arn("sns", r.physical)
    return str(r.state["arn"])


def _kms_alias(r: _New) -> str:
    r.state["arn"] = _arn("kms", str(r.inputs["name"]))
    return f"{r.name}-id"


#: By resource type: fills in the outputs the provider computes, returns the resource's id.
_OUTPUTS: dict[str, Callable[[_New], str]] = {
    "aws:dynamodb/table:Table": _table,
    "aws:sqs/queue:Queue": _queue,
    "aws:cloudwatch/eventBus:EventBus": _event_bus,
    "aws:cloudwatch/eventRule:EventRule": _event_rule,
    "aws:cloudwatch/eventArchive:EventArchive": _event_archive,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:iam/role:Role": _role,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:lambda/function:Function": _function,
    "aws:lambda/layerVersion:LayerVersion": _layer_version,
    "aws:apigatewayv2/api:Api": _api,
    "aws:apigatewayv2/stage:Stage": _stage,
    "aws:cognito/userPool:UserPool": _user_pool,
    "aws:scheduler/schedule:Schedule": _schedule,
    "aws:s3/bucket:Bucket": _bucket,
    "aws:ses/receiptRuleSet:ReceiptRuleSet": _receipt_rule_set,
    "aws:ses/receiptRule:ReceiptRule": _receipt_rule,
    "aws:kms/key:Key": _kms_key,
    "aws:sns/topic:Topic": _topic,
    "aws:kms/alias:Alias": _kms_alias,
}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Registered] = []

    def registry(self) -> Registry:
        with self._lock:
            return Registry(list(self._seen))

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        new = _New(
            name=args.name,
            inputs=inputs,
            state=dict(inputs),
            physical=str(inputs.get("name") or f"{args.name}-a1b2c3d"),
            count=len(self._seen),
        )
        outputs = _OUTPUTS.get(args.typ)
        rid = outputs(new) if outputs is not None else f"{args.name}-id"
        with self._lock:
            self._seen.append(
                Registered(typ=args.typ, name=args.name, id=rid, inputs=inputs, state=new.state)
            )
        return rid, new.state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": REGION, "name": REGION, "id": REGION, "description": "Europe (Paris)"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "id": ACCOUNT,
                "userId": "AIDAEXAMPLEDEPLOYER",
            }
        raise NotImplementedError(f"the program called {args.token}, which the mocks do not know")
