"""The functions' code: a FileArchive per function zip and the dependency layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.bundling import LAMBDA_PLATFORM, Bundle
from infra.components.common import RUNTIME, TYPE_PREFIX


@dataclass(frozen=True)
class FunctionPackage:
    """What a Lambda function is created from."""

    archive: pulumi.Archive
    #: Base64 SHA-256 of the zip, as Lambda reports it: unchanged code, no diff.
    code_sha256: str


@dataclass(frozen=True)
class FunctionPackagesArgs:
    #: The zips, already built by :func:`infra.bundling.build_bundle`.
    bundle: Bundle
    stage: str
    #: The Lambda runtime the layer is built for (a stack setting: ``runtime``).
    runtime: str = RUNTIME


class FunctionPackages(pulumi.ComponentResource):
    """Publishes the dependency layer and hands out each function's code archive."""

    layer: aws.lambda_.LayerVersion
    packages: Mapping[str, FunctionPackage]

    def __init__(
        self, name: str, args: FunctionPackagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:FunctionPackages", name, None, opts)
        layer = args.bundle.layer
        self.layer = aws.lambda_.LayerVersion(
            f"{name}-deps",
            layer_name=f"omni-{args.stage}-deps",
            description=f"Third-party runtime dependencies ({LAMBDA_PLATFORM}, {args.runtime}).",
            code=pulumi.FileArchive(str(layer.path)),
            source_code_hash=layer.base64_sha256,
            compatible_runtimes=[args.runtime],
            compatible_architectures=["arm64"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.packages = {
            fn_name: FunctionPackage(
                archive=pulumi.FileArchive(str(artifact.path)), code_sha256=artifact.base64_sha256
            )
            for fn_name, artifact in args.bundle.functions.items()
        }
        self.register_outputs({"layer_arn": self.layer.arn})
