"""The HTTP API: one Lambda integration per function, one route per declared HTTP route.

Routes with ``auth="agent"`` go through a JWT authorizer; public routes (channel
webhooks, web chat) are authenticated by their handlers (signatures, session tokens).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, check_log_retention
from topology import HttpRoute, Topology

#: Throttle of every route that declares none (steady requests per second, burst).

#: One JSON line per request in the access log.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTime",
        "ip": "$context.identity.sourceIp",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "latency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
    },
    sort_keys=True,
)


@dataclass(frozen=True)
class HttpApiArgs:
    topology: Topology
    stage: str
    #: The functions behind the routes. Without them the API is created alone (its endpoint
    #: is known, e.g. for the functions that put links to it in messages) and
    #: :meth:`HttpApi.connect` adds the integrations, routes and stage once the functions exist.
    function_arns: Mapping[str, pulumi.Input[str]] | None = None
    function_names: Mapping[str, pulumi.Input[str]] | None = None
    #: Issuer and audience of the agents' JWTs; required when an agent route is declared.
    jwt_issuer: pulumi.Input[str] | None = None
    jwt_audience: pulumi.Input[str] | None = None
    log_retention_days: int = 30
    #: The customer-managed key of the access log group (None: CloudWatch Logs' own encryption).
    kms_key_arn: pulumi.Input[str] | None = None
    #: Origins of the sites that embed the web chat widget (``widgetOrigins``): the API answers
    #: their browsers' cross-origin calls (CORS); none: no CORS configuration at all.
    cors_origins: tuple[str, ...] = ()


#: What the web chat widget sends cross-origin: a JSON body and its session token (no cookies).
CORS_METHODS = ("GET", "POST", "OPTIONS")
CORS_HEADERS = ("authorization", "content-type")
CORS_MAX_AGE_S = 3600


def widget_cors(origins: tuple[str, ...]) -> aws.apigatewayv2.ApiCorsConfigurationArgs | None:
    """The API's CORS for the widget's sites: exactly these origins, no credentials, no wildcard."""
    if not origins:
        return None
    if any("*" in origin for origin in origins):
        raise ValueError("widgetOrigins: name each site; a wildcard would let any page use the API")
    return aws.apigatewayv2.ApiCorsConfigurationArgs(
        allow_origins=list(origins),
        allow_methods=list(CORS_METHODS),
        allow_headers=list(CORS_HEADERS),
        allow_credentials=False,
        max_age=CORS_MAX_AGE_S,
    )


def route_slug(route: HttpRoute) -> str:
    """Resource-name-safe route id: ``GET /customers/{customer_id}`` -> ``get-customers-customer-id``."""
    return re.sub(r"[^a-z0-9]+", "-", route.route_key.lower()).strip("-")


class HttpApi(pulumi.ComponentResource):
    api: aws.apigatewayv2.Api
    authorizer: aws.apigatewayv2.Authorizer | None
    integrations: dict[str, aws.apigatewayv2.Integration]
    permissions: dict[str, aws.lambda_.Permission]
    routes: dict[str, aws.apigatewayv2.Route]
    access_logs: aws.cloudwatch.LogGroup
    stage: aws.apigatewayv2.Stage
    url: pulumi.Output[str]

    def __init__(self, name: str, args: HttpApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:HttpApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        routes = args.topology.routes()
        api_name = f"omni-{args.stage}-api"
        self.api = aws.apigatewayv2.Api(
            name,
            name=api_name,
            protocol_type="HTTP",
            description="Channel webhooks, web chat and the agent API.",
            cors_configuration=widget_cors(args.cors_origins),
            opts=child,
        )

        self.authorizer = None
        if any(route.auth == "agent" for route, _ in routes):
            if args.jwt_issuer is None or args.jwt_audience is None:
                raise ValueError("agent routes are declared but no JWT issuer and audience were given")
            self.authorizer = aws.apigatewayv2.Authorizer(
                f"{name}-agent-jwt",
                api_id=self.api.id,
                name="agent-jwt",
                authorizer_type="JWT",
                identity_sources=["$request.header.Authorization"],
                jwt_configuration=aws.apigatewayv2.AuthorizerJwtConfigurationArgs(
                    issuer=args.jwt_issuer, audiences=[args.jwt_audience]
                ),
                opts=child,
            )

        self.url = self.api.api_endpoint
        self._name, self._args = name, args
        self.integrations, self.permissions, self.routes = {}, {}, {}
        self.connected = False
        if args.function_arns is not None and args.function_names is not None:
            self.connect(args.function_arns, args.function_names)

    def connect(
        self, function_arns: Mapping[str, pulumi.Input[str]], function_names: Mapping[str, pulumi.Input[str]]
    ) -> None:
        """The integrations, routes, access log and stage (once, after the functions exist)."""
        if self.connected:
            raise RuntimeError("the HTTP API is connected to its functions already")
        self.connected = True
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        routes = args.topology.routes()
        api_name = f"omni-{args.stage}-api"
        for fn in args.topology.functions:
            if not fn.routes:
                continue
            self.integrations[fn.name] = aws.apigatewayv2.Integration(
                f"{name}-{fn.name}",
                api_id=self.api.id,
                integration_type="AWS_PROXY",
                integration_method="POST",
                integration_uri=function_arns[fn.name],
                payload_format_version="2.0",
                opts=child,
            )
            self.permissions[fn.name] = aws.lambda_.Permission(
                f"{name}-{fn.name}-invoke",
                action="lambda:InvokeFunction",
                function=function_names[fn.name],
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(self.api.execution_arn, "/*/*"),
                opts=child,
            )

        for route, fn in routes:
            agent = route.auth == "agent"
            self.routes[route.route_key] = aws.apigatewayv2.Route(
                f"{name}-{route_slug(route)}",
                api_id=self.api.id,
                route_key=route.route_key,
                target=pulumi.Output.concat("integrations/", self.integrations[fn.name].id),
                authorization_type="JWT" if agent else "NONE",
                authorizer_id=self.authorizer.id if agent and self.authorizer else None,
                opts=child,
            )

        self.access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=f"/aws/apigateway/{api_name}",
            retention_in_days=check_log_retention(args.log_retention_days),
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-default-stage",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=args.topology.default_throttle.rate_per_s,
                throttling_burst_limit=args.topology.default_throttle.burst,
            ),
            route_settings=[
                aws.apigatewayv2.StageRouteSettingArgs(
                    route_key=route.route_key,
                    throttling_rate_limit=route.throttle.rate_per_s,
                    throttling_burst_limit=route.throttle.burst,
                )
                for route, _ in routes
                if route.throttle is not None
            ],
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=self.access_logs.arn, format=ACCESS_LOG_FORMAT
            ),
            # Route settings name routes, which must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.routes.values())),
        )
        self.register_outputs({"url": self.url, "api_id": self.api.id})
