"""Pulumi mocks that record every resource the program registers (no CLI, no plugin, no AWS).

Each mocked resource gets the outputs the real provider computes in the shape AWS
gives them (ARNs, queue URLs, the API's execution ARN, ...), so the program's policies
and wiring can be checked against the ARNs of the resources they should point at.
"""

from __future__ import annotations

import threading
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


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Registered] = []

    def registry(self) -> Registry:
        with self._lock:
            return Registry(list(self._seen))

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        state = dict(inputs)
        physical = str(inputs.get("name") or f"{args.name}-a1b2c3d")
        rid = f"{args.name}-id"
        typ = args.typ
        if typ == "aws:dynamodb/table:Table":
            rid, state["arn"] = physical, _arn("dynamodb", f"table/{physical}")
        elif typ == "aws:sqs/queue:Queue":
            rid = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
            state.update(url=rid, arn=_arn("sqs", physical))
        elif typ == "aws:cloudwatch/eventBus:EventBus":
            rid, state["arn"] = physical, _arn("events", f"event-bus/{physical}")
        elif typ == "aws:cloudwatch/eventRule:EventRule":
            state["arn"] = _arn("events", f"rule/{inputs['eventBusName']}/{physical}")
        elif typ == "aws:cloudwatch/eventArchive:EventArchive":
            state["arn"] = _arn("events", f"archive/{physical}")
        elif typ == "aws:secretsmanager/secret:Secret":
            rid = state["arn"] = _arn("secretsmanager", f"secret:{physical}-Ab12Cd")
        elif typ == "aws:iam/role:Role":
            rid = state["name"] = physical
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{physical}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            rid, state["arn"] = physical, _arn("logs", f"log-group:{physical}")
        elif typ == "aws:lambda/function:Function":
            rid, state["arn"] = physical, _arn("lambda", f"function:{physical}")
            state["invokeArn"] = (
                f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{state['arn']}/invocations"
            )
        elif typ == "aws:lambda/layerVersion:LayerVersion":
            state["arn"] = _arn("lambda", f"layer:{inputs['layerName']}:1")
            rid = state["arn"]
        elif typ == "aws:apigatewayv2/api:Api":
            rid = f"api{len(self._seen)}"
            state["apiEndpoint"] = f"https://{rid}.execute-api.{REGION}.amazonaws.com"
            state["executionArn"] = _arn("execute-api", rid)
        elif typ == "aws:apigatewayv2/stage:Stage":
            state["invokeUrl"] = f"https://{inputs['apiId']}.execute-api.{REGION}.amazonaws.com/"
        elif typ == "aws:cognito/userPool:UserPool":
            rid = f"{REGION}_Pool{len(self._seen)}"
            state["arn"] = _arn("cognito-idp", f"userpool/{rid}")
            state["endpoint"] = f"cognito-idp.{REGION}.amazonaws.com/{rid}"
        elif typ == "aws:scheduler/schedule:Schedule":
            state["arn"] = _arn("scheduler", f"schedule/default/{physical}")
        elif typ == "aws:s3/bucket:Bucket":
            rid = state["bucket"] = str(inputs.get("bucket") or f"{args.name}-a1b2c3d")
            state["arn"] = f"arn:aws:s3:::{rid}"
        elif typ == "aws:ses/receiptRuleSet:ReceiptRuleSet":
            rid = str(inputs["ruleSetName"])
            state["arn"] = _arn("ses", f"receipt-rule-set/{rid}")
        elif typ == "aws:ses/receiptRule:ReceiptRule":
            state["arn"] = _arn("ses", f"receipt-rule-set/{inputs['ruleSetName']}:receipt-rule/{physical}")
        elif typ == "aws:kms/key:Key":
            rid = state["keyId"] = f"1234abcd-12ab-34cd-56ef-{len(self._seen):012d}"
            state["arn"] = _arn("kms", f"key/{rid}")
        elif typ == "aws:sns/topic:Topic":
            rid = state["arn"] = _arn("sns", physical)
        elif typ == "aws:kms/alias:Alias":
            state["arn"] = _arn("kms", str(inputs["name"]))
        with self._lock:
            self._seen.append(Registered(typ=typ, name=args.name, id=rid, inputs=inputs, state=state))
        return rid, state

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
