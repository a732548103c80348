"""The agent console in the cloud: a private S3 bucket behind CloudFront, and the API on the same origin.

* The files of ``omni/console/static`` go to a private bucket (public access blocked,
  ACLs off, encrypted) that only this distribution reads, through an origin access
  control (SigV4): the bucket policy names the distribution (``AWS:SourceArn``).
* ``config.js`` is written by the stack: ``apiBase`` is empty because the distribution
  also forwards the agent API's paths (every agent route's first segment, e.g.
  ``/agents*``, ``/conversations*``) to the HTTP API - same origin, so no CORS - with
  caching off and every viewer header but ``Host`` forwarded (``Authorization`` included).
  With the stack's Cognito pool, ``cognito`` carries the region and app client id: the
  page signs agents in with ``USER_PASSWORD_AUTH`` (Cognito's ``InitiateAuth`` API, called
  from the browser) and sends the ID token, whose audience is what the API's JWT
  authorizer checks. With an external issuer, agents paste a token.
* The web chat widget (``omni/widget``) is served from the same bucket and distribution:
  ``widget/omni-chat.<version>.js`` (the script's hash in its name, cached for a year:
  host pages that name it get exactly that script) and ``widget/omni-chat.js`` (the latest,
  revalidated on every load). A ``<script src>`` needs no CORS; the API's CORS for the
  sites that embed it is the stack setting ``widgetOrigins`` (:mod:`infra.components.http_api`).
* HTTPS only: viewers are redirected to HTTPS (API paths refuse HTTP), and CloudFront
  talks HTTPS (TLS 1.2) to the API. The page uses hash routes, so ``index.html`` (the
  default root object) is the only entry point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.buckets import bucket_name
from infra.components.common import TYPE_PREFIX, policy_json
from omni import widget
from omni.console import CONFIG_FILE, STATIC_DIR, config_script, content_type, static_files
from shared.domain.routing_rules import load_rules
from topology import Topology

#: AWS managed CloudFront policies (the same ids in every account).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"
FILES_ORIGIN = "console-files"
API_ORIGIN = "agent-api"
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
#: A versioned widget file never changes: a new script gets a new name.
WIDGET_VERSIONED_CACHE = "public, max-age=31536000, immutable"


def api_path_patterns(topology: Topology) -> list[str]:
    """CloudFront path patterns of the agent API: ``/<first segment>*`` of every agent route."""
    patterns = {"/openapi.json"}
    for route, _fn in topology.routes():
        if route.auth == "agent":
            first = route.path.strip("/").split("/", 1)[0]
            patterns.add(f"/{first}*")
    return sorted(patterns)


def api_host(endpoint: str) -> str:
    """``https://abc.execute-api.eu-west-3.amazonaws.com/`` -> ``abc.execute-api.eu-west-3.amazonaws.com``."""
    return endpoint.split("://", 1)[-1].split("/", 1)[0]


def files_policy(bucket_arn: str, distribution_arn: str) -> str:
    return policy_json(
        [
            {
                "Sid": "CloudFrontReadsTheConsole",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
            }
        ]
    )


@dataclass(frozen=True)
class ConsoleArgs:
    stage: str
    account_id: pulumi.Input[str]
    #: The HTTP API's endpoint (``https://<id>.execute-api.<region>.amazonaws.com``).
    api_endpoint: pulumi.Input[str]
    #: CloudFront path patterns forwarded to the API (:func:`api_path_patterns`).
    api_paths: Sequence[str]
    #: The stack's Cognito pool (region, app client id); None with an external issuer.
    cognito_region: pulumi.Input[str] | None = None
    cognito_client_id: pulumi.Input[str] | None = None
    #: Queue names the transfer menu offers; None: the routing rules' queues.
    queues: Sequence[str] | None = None
    static_dir: Path = STATIC_DIR
    #: The web chat widget's script (uploaded under ``widget/``).
    widget_script: Path = widget.SCRIPT
    force_destroy: bool = False
    price_class: str = "PriceClass_100"
    extra_config: dict[str, Any] = field(default_factory=dict)


class Console(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    distribution: aws.cloudfront.Distribution
    access_control: aws.cloudfront.OriginAccessControl
    objects: dict[str, aws.s3.BucketObjectv2]
    url: pulumi.Output[str]
    #: The widget's versioned script (what a host page's tag names).
    widget_url: pulumi.Output[str]

    def __init__(self, name: str, args: ConsoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Console", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=pulumi.Output.from_input(args.account_id).apply(
                lambda account: bucket_name(args.stage, "console", account)
            ),
            force_destroy=args.force_destroy,
            opts=child,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=child,
        )
        self.access_control = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            name=f"omni-{args.stage}-console",
            description="the agent console's distribution reads its bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-distribution",
            enabled=True,
            comment=f"omni {args.stage} agent console",
            default_root_object="index.html",
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class=args.price_class,
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=FILES_ORIGIN,
                    domain_name=self.bucket.bucket_regional_domain_name,
                    origin_access_control_id=self.access_control.id,
                ),
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=API_ORIGIN,
                    domain_name=pulumi.Output.from_input(args.api_endpoint).apply(api_host),
                    custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                        http_port=80,
                        https_port=443,
                        origin_protocol_policy="https-only",
                        origin_ssl_protocols=["TLSv1.2"],
                    ),
                ),
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=FILES_ORIGIN,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS"],
                cached_methods=["GET", "HEAD"],
                compress=True,
                cache_policy_id=CACHING_OPTIMIZED,
                response_headers_policy_id=SECURITY_HEADERS,
            ),
            ordered_cache_behaviors=[
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=pattern,
                    target_origin_id=API_ORIGIN,
                    viewer_protocol_policy="https-only",
                    allowed_methods=ALL_METHODS,
                    cached_methods=["GET", "HEAD"],
                    compress=True,
                    cache_policy_id=CACHING_DISABLED,
                    origin_request_policy_id=ALL_VIEWER_EXCEPT_HOST_HEADER,
                )
                for pattern in args.api_paths
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(
                    restriction_type="none"
                )
            ),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(
                cloudfront_default_certificate=True
            ),
            opts=child,
        )
        distribution_arn = pulumi.Output.concat(
            "arn:aws:cloudfront::", args.account_id, ":distribution/", self.distribution.id
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, distribution_arn).apply(
                lambda values: files_policy(values[0], values[1])
            ),
            # Public access is blocked before any policy exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.objects = {}
        for path in static_files(args.static_dir):
            self.objects[path.name] = aws.s3.BucketObjectv2(
                f"{name}-file-{path.name}",
                bucket=self.bucket.id,
                key=path.name,
                source=pulumi.FileAsset(str(path)),
                source_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
                content_type=content_type(path),
                cache_control="no-cache",
                opts=child,
            )
        self.objects[CONFIG_FILE] = aws.s3.BucketObjectv2(
            f"{name}-file-{CONFIG_FILE}",
            bucket=self.bucket.id,
            key=CONFIG_FILE,
            content=self._config(args),
            content_type=content_type(Path(CONFIG_FILE)),
            cache_control="no-cache",
            opts=child,
        )
        self._widget_files(name, args.widget_script, child)
        self.url = self.distribution.domain_name.apply(lambda domain: f"https://{domain}/")
        versioned = f"{widget.PREFIX}/{widget.versioned_name(args.widget_script)}"
        self.widget_url = self.distribution.domain_name.apply(lambda domain: f"https://{domain}/{versioned}")
        self.register_outputs(
            {
                "url": self.url,
                "widget_url": self.widget_url,
                "bucket": self.bucket.bucket,
                "distribution_id": self.distribution.id,
            }
        )

    def _widget_files(self, name: str, script: Path, child: pulumi.ResourceOptions) -> None:
        """The widget's script twice: under its versioned name (immutable) and as the latest."""
        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        for key, cache_control in (
            (f"{widget.PREFIX}/{widget.versioned_name(script)}", WIDGET_VERSIONED_CACHE),
            (f"{widget.PREFIX}/{script.name}", "no-cache"),
        ):
            self.objects[key] = aws.s3.BucketObjectv2(
                f"{name}-file-{key.replace('/', '-')}",
                bucket=self.bucket.id,
                key=key,
                source=pulumi.FileAsset(str(script)),
                source_hash=digest,
                content_type=content_type(script),
                cache_control=cache_control,
                opts=child,
            )

    @staticmethod
    def _config(args: ConsoleArgs) -> pulumi.Output[str]:
        def script(values: list[Any]) -> str:
            region, client_id = values
            queues = args.queues if args.queues is not None else load_rules().queues
            config: dict[str, Any] = {"apiBase": "", "queues": sorted(queues), **args.extra_config}
            if region and client_id:
                config["cognito"] = {"region": region, "clientId": client_id}
            return config_script(config)

        return pulumi.Output.all(args.cognito_region, args.cognito_client_id).apply(script)
