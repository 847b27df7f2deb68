"""The event log: MSK Serverless with IAM authentication, and the uploads topic.

MSK Serverless accepts only IAM (SASL/OAUTHBEARER over TLS, port 9098) and
replicates every partition three times. The topic is a CloudFormation
resource (AWS::MSK::Topic) with the name and partition count from
imagelake.settings; with ``-c topic_via_cloudformation=false`` it is left out
and created once with the Kafka admin API instead (docs/deploy.md).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_msk as msk
from constructs import Construct

from infra.aws.config import DeployConfig
from infra.aws.stacks.common import pod_client_security_group

#: The broker port for IAM-authenticated clients.
MSK_IAM_PORT = 9098
#: MSK Serverless keeps three replicas of every partition; it is not configurable.
MSK_SERVERLESS_REPLICATION = 3


class EventsStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, **kwargs) -> None:
        super().__init__(scope, cid, **kwargs)
        self.security_group = pod_client_security_group(
            self, "BrokerSecurityGroup", config, MSK_IAM_PORT, "MSK Serverless (Kafka over TLS, IAM auth)"
        )
        self.cluster = msk.CfnServerlessCluster(
            self,
            "Cluster",
            cluster_name=config.msk_cluster_name,
            client_authentication=msk.CfnServerlessCluster.ClientAuthenticationProperty(
                sasl=msk.CfnServerlessCluster.SaslProperty(
                    iam=msk.CfnServerlessCluster.IamProperty(enabled=True)
                )
            ),
            vpc_configs=[
                msk.CfnServerlessCluster.VpcConfigProperty(
                    subnet_ids=list(config.private_subnet_ids),
                    security_groups=[self.security_group.attr_group_id],
                )
            ],
        )
        if config.topic_via_cloudformation:
            msk.CfnTopic(
                self,
                "UploadsTopic",
                cluster_arn=self.cluster.attr_arn,
                topic_name=config.uploads_topic,
                partition_count=config.uploads_topic_partitions,
                replication_factor=MSK_SERVERLESS_REPLICATION,
            )
        CfnOutput(
            self,
            "ClusterArn",
            value=self.cluster.attr_arn,
            description="aws kafka get-bootstrap-brokers --cluster-arn <this> gives IMAGELAKE_KAFKA_BOOTSTRAP",
        )
        CfnOutput(self, "UploadsTopicName", value=config.uploads_topic)
