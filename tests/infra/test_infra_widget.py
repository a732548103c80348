"""Pulumi mock tests of the web chat widget in the cloud: its files in the console's private
bucket behind CloudFront (origin access control, HTTPS only, a versioned name), and the API's
CORS for exactly the sites of the ``widgetOrigins`` stack setting.

Uses the mocks ``test_infra_stack`` installs; each component is built on its own under a
variant name, so the main stack's registry is untouched.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from infra.components.console import (
    FILES_ORIGIN,
    WIDGET_VERSIONED_CACHE,
    Console,
    ConsoleArgs,
    api_path_patterns,
)
from infra.components.http_api import HttpApi, HttpApiArgs, widget_cors
from infra.settings import StackSettings
from omni.widget import SCRIPT, versioned_name
from tests.infra.infra_mocks import ACCOUNT, REGION, VARIANT_PREFIX, Registry
from tests.infra.stack_mocks import settled
from topology import TOPOLOGY

pytestmark = [
    pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning"),
]

BUCKET = "aws:s3/bucket:Bucket"
BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
API = "aws:apigatewayv2/api:Api"
SHOPS = ("https://shop.example.com", "https://www.shop.example.com:8443")


@pulumi.runtime.test
def test_the_widget_is_served_from_the_private_bucket_over_https_only() -> pulumi.Output[None]:
    name = f"{VARIANT_PREFIX}widget-console"
    component = Console(
        name,
        ConsoleArgs(
            stage="qa",
            account_id=ACCOUNT,
            api_endpoint=f"https://abc123.execute-api.{REGION}.amazonaws.com",
            api_paths=api_path_patterns(TOPOLOGY),
            queues=["general"],
        ),
    )

    def check(registry: Registry) -> None:
        mine = registry.variant(name)
        [bucket] = mine.of_type(BUCKET)
        keys = {o.inputs["key"]: o for o in mine.of_type(OBJECT)}
        versioned, latest = keys[f"widget/{versioned_name()}"], keys["widget/omni-chat.js"]
        for item in (versioned, latest):
            assert item.inputs["bucket"] == bucket.id
            assert item.inputs["contentType"].startswith("text/javascript")
            assert "acl" not in item.inputs  # no object is made public
        assert versioned.inputs["cacheControl"] == WIDGET_VERSIONED_CACHE
        assert latest.inputs["cacheControl"] == "no-cache"
        # The bucket is private: every public access blocked, read by this distribution only.
        [block] = mine.of_type(BLOCK)
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            assert block.inputs[flag] is True, flag
        [distribution] = mine.of_type(DISTRIBUTION)
        [policy] = mine.of_type(POLICY)
        [statement] = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert statement["Action"] == "s3:GetObject"
        assert statement["Condition"] == {
            "StringEquals": {"AWS:SourceArn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{distribution.id}"}
        }
        # Through an origin access control (SigV4, always signed), not a public website.
        [oac] = mine.of_type(OAC)
        assert (oac.inputs["signingBehavior"], oac.inputs["signingProtocol"]) == ("always", "sigv4")
        origins = {o["originId"]: o for o in distribution.inputs["origins"]}
        assert origins[FILES_ORIGIN]["originAccessControlId"] == oac.id
        # HTTPS only: /widget/* is the files' default behaviour (redirected to HTTPS), no API path.
        default = distribution.inputs["defaultCacheBehavior"]
        assert (default["targetOriginId"], default["viewerProtocolPolicy"]) == (
            FILES_ORIGIN,
            "redirect-to-https",
        )
        assert not any(
            "/widget/omni-chat.js".startswith(b["pathPattern"].rstrip("*"))
            for b in distribution.inputs["orderedCacheBehaviors"]
        )
        assert all(
            b["viewerProtocolPolicy"] == "https-only" for b in distribution.inputs["orderedCacheBehaviors"]
        )

    def check_url(url: str) -> None:
        assert url.startswith("https://")
        assert url.endswith(f"/widget/{versioned_name()}")

    component.widget_url.apply(check_url)
    return settled(component, check=check)


def http_api(name: str, origins: tuple[str, ...]) -> HttpApi:
    return HttpApi(
        name,
        HttpApiArgs(
            topology=TOPOLOGY,
            stage="qa",
            jwt_issuer="https://idp.example.com/",
            jwt_audience="omni-agents",
            cors_origins=origins,
        ),
    )


@pulumi.runtime.test
def test_the_api_answers_cross_origin_calls_from_the_configured_sites_only() -> pulumi.Output[None]:
    namespace = "omni-widget-origins"
    for key, value in {
        **{secret.config_key: secret.name for secret in TOPOLOGY.secrets},
        **{identity.config_key: "shop.example" for identity in TOPOLOGY.email_identities},
        "widgetOrigins": json.dumps([*SHOPS, "https://shop.example.com/"]),
    }.items():
        pulumi.runtime.set_config(f"{namespace}:{key}", value)
    settings = StackSettings.from_config(config=pulumi.Config(namespace), stage="qa")
    assert settings.widget_origins == SHOPS  # trailing slash dropped, duplicates once
    with_sites, without = f"{VARIANT_PREFIX}widget-cors", f"{VARIANT_PREFIX}widget-no-cors"
    apis = [http_api(with_sites, settings.widget_origins), http_api(without, ())]

    def check(registry: Registry) -> None:
        [api] = registry.variant(with_sites).of_type(API)
        cors: dict[str, Any] = api.inputs["corsConfiguration"]
        assert cors["allowOrigins"] == list(SHOPS)
        assert cors["allowCredentials"] is False
        assert set(cors["allowMethods"]) == {"GET", "POST", "OPTIONS"}
        assert set(cors["allowHeaders"]) == {"authorization", "content-type"}
        [plain] = [a for a in registry.variant(without).of_type(API) if a.name == without]
        assert "corsConfiguration" not in plain.inputs

    return settled(*apis, check=check)


def test_widget_origins_must_be_sites() -> None:
    for bad in ("http://shop.example.com", "https://shop.example.com/chat", "*", "https://*.example.com"):
        with pytest.raises(ValueError, match="widgetOrigins"):
            StackSettings(stage="dev", secret_values={}, widget_origins=(bad,))
    assert StackSettings(stage="dev", secret_values={}, widget_origins=("http://localhost:3000",))
    with pytest.raises(ValueError, match="wildcard"):
        widget_cors(("*",))
    assert widget_cors(()) is None
    assert SCRIPT.is_file()
