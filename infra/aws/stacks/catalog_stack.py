"""The image catalog: one DynamoDB item per image, on demand, expiring through TTL, recoverable."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.aws.config import DeployConfig


class CatalogStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, **kwargs) -> None:
        super().__init__(scope, cid, **kwargs)
        self.table = dynamodb.Table(
            self,
            "CatalogTable",
            table_name=config.catalog_table,
            partition_key=dynamodb.Attribute(
                name=config.catalog_partition_key, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=config.catalog_ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        CfnOutput(self, "CatalogTableName", value=config.catalog_table, description="IMAGELAKE_CATALOG_TABLE")
