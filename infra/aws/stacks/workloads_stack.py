"""Least-privilege roles for the pods: the upload API and Dagster, bound through EKS Pod Identity.

Each role trusts only the EKS Pod Identity service of this account and
cluster, and an association binds it to one Kubernetes service account
(``imagelake-api``, ``dagster``) in the imagelake namespace. Every resource
in a policy is spelled out (bucket prefixes, the catalog table, the topic,
the consumer group, the EMR application), so the policies read as the list
of what each workload does.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from imagelake.realtime.kafka import KafkaConnection, consumer_config
from infra.aws import access
from infra.aws.config import API_SERVICE_ACCOUNT, DAGSTER_SERVICE_ACCOUNT, DeployConfig
from infra.aws.stacks.common import grant

#: The consumer group librdkafka names (never committed to; imagelake/realtime/kafka.py).
KAFKA_READER_GROUP = str(consumer_config(KafkaConnection(""))["group.id"])


class WorkloadsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        config: DeployConfig,
        lake_key: kms.IKey,
        emr_application_arn: str,
        emr_job_role: iam.IRole,
        **kwargs,
    ) -> None:
        super().__init__(scope, cid, **kwargs)
        kafka = f"arn:aws:kafka:{config.region}:{config.account}"
        cluster_arn = f"{kafka}:cluster/{config.msk_cluster_name}/*"
        topic_arn = f"{kafka}:topic/{config.msk_cluster_name}/*/{config.uploads_topic}"
        group_arn = f"{kafka}:group/{config.msk_cluster_name}/*/{KAFKA_READER_GROUP}"
        table_arn = f"arn:aws:dynamodb:{config.region}:{config.account}:table/{config.catalog_table}"

        self.api_role = self._pod_role(config, "api", API_SERVICE_ACCOUNT, "The upload API")
        grant(
            self.api_role,
            [
                *access.prefix_statements(config.lake_bucket_name, access.API_LAKE, "Lake"),
                access.kms_statement(lake_key.key_arn, config.region, access.API_LAKE, "LakeKey"),
                iam.PolicyStatement(
                    sid="KafkaConnect",
                    actions=["kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently"],
                    resources=[cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="KafkaProduceUploads",
                    actions=["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
                    resources=[topic_arn],
                ),
                # GET /v1/images/{id} reads an item; an upload writes its `accepted` item (and an
                # Idempotency-Key's) and, if Kafka does not acknowledge it, marks it `refused`
                # (conditional writes; imagelake/api/upload.py).
                iam.PolicyStatement(
                    sid="CatalogAccepted",
                    actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                    resources=[table_arn],
                ),
            ],
        )

        self.dagster_role = self._pod_role(
            config, "dagster", DAGSTER_SERVICE_ACCOUNT, "Dagster (code server, daemon, runs)"
        )
        grant(
            self.dagster_role,
            [
                *access.prefix_statements(config.lake_bucket_name, access.DAGSTER_LAKE, "Lake"),
                *access.prefix_statements(config.ops_bucket_name, access.DAGSTER_OPS, "Ops"),
                access.kms_statement(lake_key.key_arn, config.region, access.DAGSTER_LAKE, "LakeKey"),
                iam.PolicyStatement(
                    sid="KafkaConnect", actions=["kafka-cluster:Connect"], resources=[cluster_arn]
                ),
                iam.PolicyStatement(
                    sid="KafkaReadUploads",
                    actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                    resources=[topic_arn],
                ),
                iam.PolicyStatement(
                    sid="KafkaReaderGroup",
                    actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                    resources=[group_arn],
                ),
                iam.PolicyStatement(
                    sid="CatalogReadWrite",
                    actions=[
                        "dynamodb:DescribeTable",
                        "dynamodb:GetItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:Query",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:BatchWriteItem",
                        "dynamodb:ConditionCheckItem",
                    ],
                    resources=[table_arn],
                ),
                iam.PolicyStatement(
                    sid="SparkJobRuns",
                    actions=[
                        "emr-serverless:GetApplication",
                        "emr-serverless:StartJobRun",
                        "emr-serverless:GetJobRun",
                        "emr-serverless:CancelJobRun",
                        "emr-serverless:GetDashboardForJobRun",
                    ],
                    resources=[emr_application_arn, f"{emr_application_arn}/jobruns/*"],
                ),
                iam.PolicyStatement(
                    sid="PassSparkJobRole",
                    actions=["iam:PassRole"],
                    resources=[emr_job_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}},
                ),
            ],
        )

    def _pod_role(self, config: DeployConfig, purpose: str, service_account: str, who: str) -> iam.Role:
        role = iam.Role(
            self,
            f"{purpose.title()}Role",
            role_name=config.role_name(purpose),
            description=f"{who} on EKS {config.eks_cluster_name}, service account {config.k8s_namespace}/{service_account}",
            assumed_by=iam.ServicePrincipal(
                "pods.eks.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": config.account},
                    "ArnEquals": {"aws:SourceArn": config.eks_cluster_arn},
                },
            ).with_session_tags(),
        )
        eks.CfnPodIdentityAssociation(
            self,
            f"{purpose.title()}PodIdentity",
            cluster_name=config.eks_cluster_name,
            namespace=config.k8s_namespace,
            service_account=service_account,
            role_arn=role.role_arn,
        )
        CfnOutput(self, f"{purpose.title()}RoleArn", value=role.role_arn)
        return role
