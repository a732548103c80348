"""API Gateway WebSocket APIs (web chat push), in two steps around the functions.

:class:`WebSocketApis` (before the functions): each declared API with its stage. A
function granted ``manage`` on an API needs its management endpoint (environment) and
the ARN of its stage's connections (policy: ``execute-api:ManageConnections`` on
``<execution ARN>/<stage>/POST/@connections/*`` only: posting, not reading or closing).

:class:`WebSocketRoutes` (after the functions): one Lambda proxy integration per
function and API, one route per declared route key, and the permission for API Gateway
to invoke the function from that API's stage only. ``$connect`` authenticates in the
function (a browser cannot send headers on a WebSocket; the session token is a query
parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX
from topology import Topology


def websocket_stage_name(stage: str) -> str:
    """WebSocket stages cannot be ``$default``: the stage is named after the deployment stage."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", stage)


@dataclass(frozen=True)
class WebSocketApisArgs:
    topology: Topology
    stage: str


class WebSocketApis(pulumi.ComponentResource):
    apis: dict[str, aws.apigatewayv2.Api]
    stages: dict[str, aws.apigatewayv2.Stage]
    #: ``https://<api id>.execute-api.<region>.amazonaws.com/<stage>`` per API.
    management_endpoints: dict[str, pulumi.Output[str]]
    #: What ``execute-api:ManageConnections`` is granted on: posting to the stage's connections.
    connections_arns: dict[str, pulumi.Output[str]]
    #: ``wss://...`` where browsers connect, per API.
    urls: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: WebSocketApisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:WebSocketApis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stage_name = websocket_stage_name(args.stage)
        self.apis, self.stages, self.management_endpoints, self.connections_arns, self.urls = (
            {},
            {},
            {},
            {},
            {},
        )
        for declared in args.topology.websocket_apis:
            api = aws.apigatewayv2.Api(
                f"{name}-{declared.name}",
                name=f"omni-{args.stage}-{declared.name}-ws",
                protocol_type="WEBSOCKET",
                route_selection_expression="$request.body.action",
                description=declared.description,
                opts=child,
            )
            throttle = args.topology.default_throttle
            self.stages[declared.name] = aws.apigatewayv2.Stage(
                f"{name}-{declared.name}-stage",
                api_id=api.id,
                name=stage_name,
                auto_deploy=True,
                default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                    throttling_rate_limit=throttle.rate_per_s, throttling_burst_limit=throttle.burst
                ),
                opts=child,
            )
            self.apis[declared.name] = api
            self.urls[declared.name] = pulumi.Output.concat(api.api_endpoint, "/", stage_name)
            self.management_endpoints[declared.name] = api.api_endpoint.apply(
                lambda endpoint: "https://" + endpoint.split("://", 1)[-1] + "/" + stage_name
            )
            self.connections_arns[declared.name] = pulumi.Output.concat(
                api.execution_arn, "/", stage_name, "/POST/@connections/*"
            )
        self.register_outputs({"urls": self.urls})


@dataclass(frozen=True)
class WebSocketRoutesArgs:
    topology: Topology
    stage: str
    apis: WebSocketApis
    function_invoke_arns: Mapping[str, pulumi.Input[str]]
    function_names: Mapping[str, pulumi.Input[str]]


class WebSocketRoutes(pulumi.ComponentResource):
    integrations: dict[tuple[str, str], aws.apigatewayv2.Integration]
    permissions: dict[tuple[str, str], aws.lambda_.Permission]
    routes: dict[tuple[str, str], aws.apigatewayv2.Route]

    def __init__(
        self, name: str, args: WebSocketRoutesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:WebSocketRoutes", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stage_name = websocket_stage_name(args.stage)
        self.integrations, self.permissions, self.routes = {}, {}, {}
        for declared in args.topology.websocket_apis:
            api = args.apis.apis[declared.name]
            for route, fn in args.topology.websocket_routes(declared.name):
                key = (declared.name, fn.name)
                if key not in self.integrations:
                    self.integrations[key] = aws.apigatewayv2.Integration(
                        f"{name}-{declared.name}-{fn.name}",
                        api_id=api.id,
                        integration_type="AWS_PROXY",
                        integration_method="POST",
                        integration_uri=args.function_invoke_arns[fn.name],
                        opts=child,
                    )
                    self.permissions[key] = aws.lambda_.Permission(
                        f"{name}-{declared.name}-{fn.name}-invoke",
                        action="lambda:InvokeFunction",
                        function=args.function_names[fn.name],
                        principal="apigateway.amazonaws.com",
                        source_arn=pulumi.Output.concat(api.execution_arn, "/", stage_name, "/*"),
                        opts=child,
                    )
                slug = route.route_key.strip("$").lower()
                self.routes[(declared.name, route.route_key)] = aws.apigatewayv2.Route(
                    f"{name}-{declared.name}-{slug}",
                    api_id=api.id,
                    route_key=route.route_key,
                    target=pulumi.Output.concat("integrations/", self.integrations[key].id),
                    authorization_type="NONE",
                    opts=child,
                )
        self.register_outputs({})
