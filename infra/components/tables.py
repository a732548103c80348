"""DynamoDB tables: on demand, point-in-time recovery and encryption at rest always on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, physical_name
from topology import Gsi, Table


@dataclass(frozen=True)
class TablesArgs:
    tables: Sequence[Table]
    stage: str
    #: Refuse ``DeleteTable`` (on by default; turn off for throwaway stacks).
    deletion_protection: bool = True
    #: The customer-managed key the tables are encrypted with (None: DynamoDB's AWS-owned key).
    kms_key_arn: pulumi.Input[str] | None = None


class Tables(pulumi.ComponentResource):
    """One DynamoDB table per declared :class:`~topology.Table`."""

    tables: dict[str, aws.dynamodb.Table]
    names: dict[str, pulumi.Output[str]]
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: TablesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Tables", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.tables = {}
        for table in args.tables:
            self.tables[table.name] = aws.dynamodb.Table(
                f"{name}-{table.name}",
                name=physical_name(args.stage, table.name),
                billing_mode="PAY_PER_REQUEST",
                hash_key=table.partition_key,
                range_key=table.sort_key,
                attributes=[
                    aws.dynamodb.TableAttributeArgs(name=attr, type="S") for attr in table.key_attributes
                ],
                global_secondary_indexes=[_gsi(gsi) for gsi in table.gsis] or None,
                ttl=(
                    aws.dynamodb.TableTtlArgs(attribute_name=table.ttl_attribute, enabled=True)
                    if table.ttl_attribute
                    else None
                ),
                point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
                server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                    enabled=True, kms_key_arn=args.kms_key_arn
                ),
                deletion_protection_enabled=args.deletion_protection,
                opts=child,
            )
        self.names = {key: table.name for key, table in self.tables.items()}
        self.arns = {key: table.arn for key, table in self.tables.items()}
        self.register_outputs({"names": self.names, "arns": self.arns})


def _gsi(gsi: Gsi) -> aws.dynamodb.TableGlobalSecondaryIndexArgs:
    key_schemas = [
        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=gsi.partition_key, key_type="HASH")
    ]
    if gsi.sort_key:
        key_schemas.append(
            aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=gsi.sort_key, key_type="RANGE")
        )
    return aws.dynamodb.TableGlobalSecondaryIndexArgs(
        name=gsi.name,
        projection_type=gsi.projection,
        key_schemas=key_schemas,
        non_key_attributes=list(gsi.non_key_attributes) if gsi.projection == "INCLUDE" else None,
    )
