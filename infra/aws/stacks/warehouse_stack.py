"""The warehouse: Redshift Serverless, and a Glue catalog over the lake's Parquet for Spectrum.

Glue tables are built from :mod:`imagelake.lake.schemas` (columns, order, types)
and :mod:`imagelake.lake.layout` (locations), so the catalog cannot drift from the
files the code writes. The tables are not partitioned: Spectrum reads every
file under a table's prefix (subfolders included), and with the retention
period the tables stay small; registering ``dt`` partitions is a later
optimisation (docs/infra.md). dbt reads them through the external schema
``SPECTRUM_SCHEMA`` (created with one SQL statement, docs/deploy.md).
"""

from __future__ import annotations

import pyarrow as pa
from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_redshiftserverless as redshift
from constructs import Construct

from imagelake.lake import layout
from imagelake.lake.schemas import SCHEMAS
from infra.aws import access
from infra.aws.config import DeployConfig
from infra.aws.stacks.common import grant, pod_client_security_group

REDSHIFT_PORT = 5439
#: The database dbt builds in (profiles.yml's REDSHIFT_DATABASE default).
WAREHOUSE_DATABASE = "imagelake"
WAREHOUSE_ADMIN = "imagelake_admin"

_PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def glue_type(data_type: pa.DataType) -> str:
    """The Glue (Hive) type of an Arrow type; an unmapped type fails synth rather than drift."""
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_int64(data_type):
        return "bigint"
    if pa.types.is_int32(data_type):
        return "int"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_float64(data_type):
        return "double"
    if pa.types.is_float32(data_type):
        return "float"
    if pa.types.is_date32(data_type):
        return "date"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "binary"
    raise ValueError(
        f"no Glue type for Arrow type {data_type}: extend infra/aws/stacks/warehouse_stack.py:glue_type"
    )


def glue_columns(schema: pa.Schema) -> list[glue.CfnTable.ColumnProperty]:
    return [glue.CfnTable.ColumnProperty(name=f.name, type=glue_type(f.type)) for f in schema]


class WarehouseStack(Stack):
    def __init__(
        self, scope: Construct, cid: str, *, config: DeployConfig, lake_key: kms.IKey, **kwargs
    ) -> None:
        super().__init__(scope, cid, **kwargs)
        database = glue.CfnDatabase(
            self,
            "LakeDatabase",
            catalog_id=config.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=config.glue_database,
                description=f"imagelake {config.env_name}: the lake's Parquet tables (Redshift Spectrum)",
            ),
        )
        for table, prefix in sorted(layout.TABLE_PREFIXES.items()):
            glue_table = glue.CfnTable(
                self,
                f"Table{''.join(p.title() for p in table.split('_'))}",
                catalog_id=config.account,
                database_name=config.glue_database,
                table_input=glue.CfnTable.TableInputProperty(
                    name=table,
                    table_type="EXTERNAL_TABLE",
                    description=f"{prefix} in the lake; columns from imagelake.lake.schemas",
                    parameters={"classification": "parquet", "EXTERNAL": "TRUE"},
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        columns=glue_columns(SCHEMAS[table]),
                        location=f"s3://{config.lake_bucket_name}/{prefix}",
                        input_format=_PARQUET_INPUT,
                        output_format=_PARQUET_OUTPUT,
                        serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=_PARQUET_SERDE),
                    ),
                ),
            )
            glue_table.node.add_dependency(database)

        glue_arn = f"arn:aws:glue:{config.region}:{config.account}"
        self.spectrum_role = iam.Role(
            self,
            "SpectrumRole",
            role_name=config.role_name("spectrum"),
            description="Redshift Spectrum: reads the Glue catalog and the lake's table prefixes",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("redshift.amazonaws.com"),
                iam.ServicePrincipal("redshift-serverless.amazonaws.com"),
            ),
        )
        grant(
            self.spectrum_role,
            [
                *access.prefix_statements(config.lake_bucket_name, access.SPECTRUM_LAKE, "Lake"),
                access.kms_statement(lake_key.key_arn, config.region, access.SPECTRUM_LAKE, "LakeKey"),
                iam.PolicyStatement(
                    sid="GlueCatalogRead",
                    actions=[
                        "glue:GetDatabase",
                        "glue:GetDatabases",
                        "glue:GetTable",
                        "glue:GetTables",
                        "glue:GetPartition",
                        "glue:GetPartitions",
                        "glue:BatchGetPartition",
                    ],
                    resources=[
                        f"{glue_arn}:catalog",
                        f"{glue_arn}:database/{config.glue_database}",
                        f"{glue_arn}:table/{config.glue_database}/*",
                    ],
                ),
            ],
        )

        security_group = pod_client_security_group(
            self, "WorkgroupSecurityGroup", config, REDSHIFT_PORT, "Redshift Serverless (dbt)"
        )
        namespace = redshift.CfnNamespace(
            self,
            "Namespace",
            namespace_name=config.name("warehouse"),
            db_name=WAREHOUSE_DATABASE,
            admin_username=WAREHOUSE_ADMIN,
            manage_admin_password=True,  # the password lives in Secrets Manager, never in a template
            iam_roles=[self.spectrum_role.role_arn],
            default_iam_role_arn=self.spectrum_role.role_arn,
            log_exports=["userlog", "connectionlog", "useractivitylog"],
        )
        namespace.apply_removal_policy(RemovalPolicy.RETAIN)
        workgroup = redshift.CfnWorkgroup(
            self,
            "Workgroup",
            workgroup_name=config.name("warehouse"),
            namespace_name=config.name("warehouse"),
            base_capacity=config.redshift_base_rpu,
            max_capacity=config.redshift_max_rpu,
            publicly_accessible=False,
            enhanced_vpc_routing=True,
            port=REDSHIFT_PORT,
            subnet_ids=list(config.private_subnet_ids),
            security_group_ids=[security_group.attr_group_id],
        )
        workgroup.node.add_dependency(namespace)
        CfnOutput(
            self,
            "WorkgroupEndpoint",
            value=workgroup.attr_workgroup_endpoint_address,
            description="REDSHIFT_HOST",
        )
        CfnOutput(self, "SpectrumRoleArn", value=self.spectrum_role.role_arn)
        CfnOutput(self, "GlueDatabase", value=config.glue_database)
