"""Pulumi mock tests of the agent console: a private bucket read by CloudFront only, HTTPS only.

Uses the mocks ``test_infra_stack`` installs (one set per process); each component is
built on its own under a variant name, so the main stack's registry is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.components.console import (
    ALL_VIEWER_EXCEPT_HOST_HEADER,
    API_ORIGIN,
    CACHING_DISABLED,
    FILES_ORIGIN,
    Console,
    ConsoleArgs,
    api_host,
    api_path_patterns,
)
from omni.console import STATIC_DIR
from omni.widget import versioned_name
from tests.infra.infra_mocks import ACCOUNT, REGION, VARIANT_PREFIX, Registry
from tests.infra.stack_mocks import settled
from topology import TOPOLOGY

pytestmark = [
    pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning"),
]

BUCKET = "aws:s3/bucket:Bucket"
BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
API_ENDPOINT = f"https://abc123.execute-api.{REGION}.amazonaws.com"


def build(name: str, **extra: Any) -> Console:
    return Console(
        name,
        ConsoleArgs(
            stage="qa",
            account_id=ACCOUNT,
            api_endpoint=API_ENDPOINT,
            api_paths=api_path_patterns(TOPOLOGY),
            **extra,
        ),
    )


def config_of(registry: Registry) -> dict[str, Any]:
    [config] = [o for o in registry.of_type(OBJECT) if o.inputs["key"] == "config.js"]
    text = str(config.inputs["content"])
    prefix = "window.OMNI_CONSOLE = "
    assert text.startswith(prefix)
    return dict(json.loads(text[len(prefix) :].strip().rstrip(";")))


def test_api_paths_cover_every_agent_route_and_nothing_else() -> None:
    patterns = api_path_patterns(TOPOLOGY)
    agent_paths = [route.path for route, _ in TOPOLOGY.routes() if route.auth == "agent"]
    assert agent_paths
    for path in agent_paths:
        assert any(path.startswith(p.rstrip("*")) for p in patterns), path
    webhooks = [route.path for route, _ in TOPOLOGY.routes() if route.auth != "agent"]
    for path in webhooks:
        assert not any(path.startswith(p.rstrip("*")) for p in patterns if p != "/openapi.json"), path
    assert api_host(API_ENDPOINT + "/") == f"abc123.execute-api.{REGION}.amazonaws.com"


@pulumi.runtime.test
def test_console_bucket_is_private_and_read_by_the_distribution_only() -> pulumi.Output[None]:
    name = f"{VARIANT_PREFIX}console"
    component = build(name, cognito_region=REGION, cognito_client_id="client123")

    def check(registry: Registry) -> None:
        mine = registry.variant(name)
        [bucket] = mine.of_type(BUCKET)
        assert bucket.inputs["bucket"] == f"omni-qa-console-{ACCOUNT}"
        [block] = mine.of_type(BLOCK)
        assert block.inputs["bucket"] == bucket.id
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            assert block.inputs[flag] is True, flag
        [ownership] = mine.of_type(OWNERSHIP)
        assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
        [encryption] = mine.of_type(ENCRYPTION)
        default = encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        assert default["sseAlgorithm"] == "AES256"

        [oac] = mine.of_type(OAC)
        assert (
            oac.inputs["originAccessControlOriginType"],
            oac.inputs["signingBehavior"],
            oac.inputs["signingProtocol"],
        ) == ("s3", "always", "sigv4")

        [distribution] = mine.of_type(DISTRIBUTION)
        [policy] = mine.of_type(POLICY)
        [statement] = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert statement["Action"] == "s3:GetObject"
        assert statement["Resource"] == f"arn:aws:s3:::{bucket.id}/*"
        assert statement["Condition"] == {
            "StringEquals": {"AWS:SourceArn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{distribution.id}"}
        }
        origins = {o["originId"]: o for o in distribution.inputs["origins"]}
        assert origins[FILES_ORIGIN]["originAccessControlId"] == oac.id
        assert "s3OriginConfig" not in origins[FILES_ORIGIN]  # no legacy origin access identity

        # Files: every static file with its content type, and the generated config.
        keys = {o.inputs["key"]: o for o in mine.of_type(OBJECT)}
        widget_keys = {f"widget/{versioned_name()}", "widget/omni-chat.js"}
        assert (
            set(keys) == {p.name for p in STATIC_DIR.iterdir() if p.is_file()} | {"config.js"} | widget_keys
        )
        assert keys["index.html"].inputs["contentType"].startswith("text/html")
        assert keys["app.js"].inputs["contentType"].startswith("text/javascript")
        assert all(o.inputs["bucket"] == bucket.id for o in keys.values())
        assert config_of(mine) == {
            "apiBase": "",
            "cognito": {"clientId": "client123", "region": REGION},
            "queues": ["billing", "general", "retention", "sales", "technical"],
        }

    return settled(component, check=check)


@pulumi.runtime.test
def test_console_distribution_is_https_only_with_the_api_on_the_same_origin() -> pulumi.Output[None]:
    name = f"{VARIANT_PREFIX}console-https"
    component = build(name, queues=["general"])

    def check(registry: Registry) -> None:
        mine = registry.variant(name)
        [distribution] = mine.of_type(DISTRIBUTION)
        inputs = distribution.inputs
        assert inputs["enabled"] is True
        assert inputs["defaultRootObject"] == "index.html"
        default = inputs["defaultCacheBehavior"]
        assert default["targetOriginId"] == FILES_ORIGIN
        assert default["viewerProtocolPolicy"] == "redirect-to-https"
        assert set(default["allowedMethods"]) == {"GET", "HEAD", "OPTIONS"}
        behaviours = inputs["orderedCacheBehaviors"]
        assert [b["pathPattern"] for b in behaviours] == api_path_patterns(TOPOLOGY)
        for behaviour in behaviours:
            assert behaviour["targetOriginId"] == API_ORIGIN
            assert behaviour["viewerProtocolPolicy"] == "https-only"
            assert behaviour["cachePolicyId"] == CACHING_DISABLED
            assert behaviour["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
            assert {"POST", "PUT", "PATCH", "DELETE"} <= set(behaviour["allowedMethods"])
        origins = {o["originId"]: o for o in inputs["origins"]}
        api = origins[API_ORIGIN]
        assert api["domainName"] == f"abc123.execute-api.{REGION}.amazonaws.com"
        assert api["customOriginConfig"]["originProtocolPolicy"] == "https-only"
        assert api["customOriginConfig"]["originSslProtocols"] == ["TLSv1.2"]
        assert inputs["viewerCertificate"]["cloudfrontDefaultCertificate"] is True
        # No Cognito pool (an external issuer): the page offers the token paste only.
        assert config_of(mine) == {"apiBase": "", "queues": ["general"]}

    return settled(component, check=check)


def test_every_static_file_is_referenced_relative_to_the_page() -> None:
    # Served at /console/ locally and at / by CloudFront: links must be relative.
    index = (STATIC_DIR / "index.html").read_text()
    for asset in ("style.css", "config.js", "app.js"):
        assert f'"{asset}"' in index, asset
    assert 'src="/' not in index
    assert 'href="/' not in index
    assert Path(STATIC_DIR / "app.js").stat().st_size > 0
