"""Small pieces more than one stack builds the same way."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.aws.config import DeployConfig


def pod_client_security_group(
    scope: Construct, cid: str, config: DeployConfig, port: int, what: str
) -> ec2.CfnSecurityGroup:
    """A security group in the EKS VPC that lets the EKS pods (and nothing else) in on one TCP port."""
    return ec2.CfnSecurityGroup(
        scope,
        cid,
        group_description=f"imagelake {config.env_name} {what}: from the EKS pods on {port}",
        vpc_id=config.vpc_id,
        security_group_ingress=[
            ec2.CfnSecurityGroup.IngressProperty(
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                source_security_group_id=config.eks_client_security_group_id,
                description=f"{what} clients in the EKS cluster",
            )
        ],
    )


def grant(role: iam.Role, statements: Iterable[iam.PolicyStatement | None]) -> None:
    """Attach statements to a role's policy (``None`` entries, for nothing to grant, are skipped)."""
    for statement in statements:
        if statement is not None:
            role.add_to_policy(statement)
