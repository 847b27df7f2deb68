"""Batch processing: an EMR Serverless Spark application with capacity limits, and its job role.

The application starts on the first job and stops when idle, so it costs
nothing between the scheduled runs. The job role reaches the lake's zones
the ops bucket's code, logs and Pipes prefixes, and may only update catalog
items (derivative keys), nothing else.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.aws import access
from infra.aws.config import DeployConfig
from infra.aws.stacks.common import grant


class ProcessingStack(Stack):
    def __init__(
        self, scope: Construct, cid: str, *, config: DeployConfig, lake_key: kms.IKey, **kwargs
    ) -> None:
        super().__init__(scope, cid, **kwargs)
        self.application = emr.CfnApplication(
            self,
            "SparkApplication",
            name=config.name("spark"),
            type="SPARK",
            release_label=config.emr_release_label,
            # The Spark package (a venv archive) is built on x86_64 Linux, so the workers are too.
            architecture="X86_64",
            maximum_capacity=emr.CfnApplication.MaximumAllowedResourcesProperty(
                cpu=f"{config.emr_max_vcpu} vCPU",
                memory=f"{config.emr_max_memory_gb} GB",
            ),
            auto_start_configuration=emr.CfnApplication.AutoStartConfigurationProperty(enabled=True),
            auto_stop_configuration=emr.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=config.emr_idle_minutes
            ),
            monitoring_configuration=emr.CfnApplication.MonitoringConfigurationProperty(
                # Encrypted by the ops bucket's default SSE-KMS, through S3 like every other write.
                s3_monitoring_configuration=emr.CfnApplication.S3MonitoringConfigurationProperty(
                    log_uri=f"s3://{config.ops_bucket_name}/{access.EMR_LOGS}"
                )
            ),
        )
        self.application_arn = self.application.attr_arn
        self.job_role = iam.Role(
            self,
            "JobRole",
            role_name=config.role_name("emr-job"),
            description="Runs imagelake's Spark jobs on EMR Serverless: lake zones and ops prefixes only",
            assumed_by=iam.ServicePrincipal(
                "emr-serverless.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": config.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:aws:emr-serverless:{config.region}:{config.account}:/applications/*"
                    },
                },
            ),
        )
        grant(
            self.job_role,
            [
                *access.prefix_statements(config.lake_bucket_name, access.EMR_LAKE, "Lake"),
                *access.prefix_statements(config.ops_bucket_name, access.EMR_OPS, "Ops"),
                access.kms_statement(lake_key.key_arn, config.region, access.EMR_LAKE, "LakeKey"),
                # The derivatives job records each image's derivative keys on its catalog item.
                iam.PolicyStatement(
                    sid="CatalogDerivativeKeys",
                    actions=["dynamodb:UpdateItem"],
                    resources=[
                        f"arn:aws:dynamodb:{config.region}:{config.account}:table/{config.catalog_table}"
                    ],
                ),
            ],
        )
        CfnOutput(self, "ApplicationId", value=self.application.attr_application_id)
        CfnOutput(self, "JobRoleArn", value=self.job_role.role_arn)
        CfnOutput(self, "SparkCodeUri", value=f"s3://{config.ops_bucket_name}/{access.SPARK_CODE}")
