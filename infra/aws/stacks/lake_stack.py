"""The lake: an encrypted, private, TLS-only S3 bucket whose zones expire after the retention period.

Beside it, an ops bucket for what is not lake data (the Spark package, EMR
logs, Dagster Pipes messages), so the lake's lifecycle and roles stay about data.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from imagelake.lake import layout
from infra.aws import access
from infra.aws.config import DeployConfig

#: Days a superseded or deleted object version is kept before it is purged for good.
NONCURRENT_VERSION_DAYS = 1
#: Days EMR job logs and Dagster compute logs are kept in the ops bucket.
EMR_LOG_DAYS = 30


def _private_bucket(
    scope: Construct, cid: str, name: str, key: kms.IKey, rules: list[s3.LifecycleRule]
) -> s3.Bucket:
    return s3.Bucket(
        scope,
        cid,
        bucket_name=name,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        lifecycle_rules=[
            *rules,
            s3.LifecycleRule(
                id="abort-incomplete-multipart-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
            s3.LifecycleRule(
                id="purge-noncurrent-versions",
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
            ),
            s3.LifecycleRule(id="remove-expired-delete-markers", expired_object_delete_marker=True),
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )


class LakeStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, **kwargs) -> None:
        super().__init__(scope, cid, **kwargs)
        self.key = kms.Key(
            self,
            "LakeKey",
            alias=f"alias/{config.name('lake')}",
            description=f"Encrypts the imagelake {config.env_name} lake and ops buckets",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        days = Duration.days(config.retention_days)
        self.bucket = _private_bucket(
            self,
            "LakeBucket",
            config.lake_bucket_name,
            self.key,
            [
                s3.LifecycleRule(id=f"expire-{zone}", prefix=f"{zone}/", expiration=days)
                for zone in layout.ZONES
            ],
        )
        self.ops_bucket = _private_bucket(
            self,
            "OpsBucket",
            config.ops_bucket_name,
            self.key,
            [
                s3.LifecycleRule(
                    id="expire-emr-logs", prefix=access.EMR_LOGS, expiration=Duration.days(EMR_LOG_DAYS)
                ),
                s3.LifecycleRule(
                    id="expire-dagster-logs",
                    prefix=access.DAGSTER_LOGS,
                    expiration=Duration.days(EMR_LOG_DAYS),
                ),
                s3.LifecycleRule(id="expire-pipes-messages", prefix=access.PIPES, expiration=days),
            ],
        )
        CfnOutput(self, "LakeUrl", value=f"s3://{config.lake_bucket_name}", description="IMAGELAKE_LAKE_URL")
        CfnOutput(self, "OpsBucketName", value=config.ops_bucket_name)
        CfnOutput(self, "LakeKeyArn", value=self.key.key_arn)
