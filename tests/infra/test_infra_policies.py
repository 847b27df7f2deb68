"""Every role reaches exactly the lake prefixes its code uses; widening one, or opening a bucket, fails here.

The expected prefixes are written out below from imagelake.lake.layout, independently
of infra/aws/access.py, so a change to a role's reach has to change this file too.
"""

from __future__ import annotations

import copy

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from imagelake.lake import layout
from infra.aws.policy_check import bucket_exposure, bucket_grants, role_bucket_grants, role_logical_id

RAW_IMAGES = f"{layout.RAW_IMAGES}/"
RAW_EVENTS = f"{layout.RAW_EVENTS}/"
DEAD = f"{layout.RAW_DEAD_LETTERS}/"
CURATED = f"{layout.CURATED}/"
DERIV = f"{layout.DERIVATIVES}/"
EVERY_ZONE = {RAW_IMAGES, RAW_EVENTS, DEAD, CURATED, DERIV}

#: role purpose -> stack part -> {kind: prefixes} on the lake bucket.
EXPECTED_LAKE = {
    "api": (
        "workloads",
        {"read": set(), "write": {RAW_IMAGES}, "delete": {RAW_IMAGES}, "list": {RAW_IMAGES}},
    ),
    "dagster": (
        "workloads",
        {"read": EVERY_ZONE, "write": {RAW_EVENTS, DEAD, CURATED}, "delete": set(), "list": EVERY_ZONE},
    ),
    "emr-job": (
        "processing",
        {
            "read": EVERY_ZONE,
            "write": {RAW_EVENTS, DEAD, CURATED, DERIV},
            "delete": EVERY_ZONE,
            "list": EVERY_ZONE,
        },
    ),
    "spectrum": (
        "warehouse",
        {
            "read": set(layout.TABLE_PREFIXES.values()),
            "write": set(),
            "delete": set(),
            "list": set(layout.TABLE_PREFIXES.values()),
        },
    ),
}
EXPECTED_OPS = {
    "api": ("workloads", {"read": set(), "write": set(), "delete": set(), "list": set()}),
    "dagster": (
        "workloads",
        {
            "read": {"pipes/", "emr-logs/", "dagster-logs/"},
            "write": {"pipes/", "dagster-logs/"},
            "delete": set(),
            "list": {"pipes/", "emr-logs/", "dagster-logs/"},
        },
    ),
    "emr-job": (
        "processing",
        {
            "read": {"spark/", "pipes/"},
            "write": {"emr-logs/", "pipes/"},
            "delete": set(),
            "list": {"spark/", "pipes/"},
        },
    ),
    "spectrum": ("warehouse", {"read": set(), "write": set(), "delete": set(), "list": set()}),
}


@pytest.mark.parametrize("purpose", sorted(EXPECTED_LAKE))
def test_each_role_reaches_only_its_lake_prefixes(built, template_json, purpose):
    part, expected = EXPECTED_LAKE[purpose]
    found = role_bucket_grants(
        template_json[part], built.config.role_name(purpose), built.config.lake_bucket_name
    )
    assert found.violations == []
    assert found.grants == expected


@pytest.mark.parametrize("purpose", sorted(EXPECTED_OPS))
def test_each_role_reaches_only_its_ops_prefixes(built, template_json, purpose):
    part, expected = EXPECTED_OPS[purpose]
    found = role_bucket_grants(
        template_json[part], built.config.role_name(purpose), built.config.ops_bucket_name
    )
    assert found.violations == []
    assert found.grants == expected


def test_no_role_has_wildcard_actions_or_resources(template_json):
    for part, template in template_json.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            for st in resource["Properties"]["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (part, logical_id, st)
                assert "*" not in resources, (part, logical_id, st)


def test_pod_roles_trust_only_eks_pod_identity_of_this_cluster(built, templates):
    cfg = built.config
    for purpose, service_account in (("api", "imagelake-api"), ("dagster", "dagster")):
        templates["workloads"].has_resource_properties(
            "AWS::IAM::Role",
            {
                "RoleName": cfg.role_name(purpose),
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Action": ["sts:AssumeRole", "sts:TagSession"],
                            "Effect": "Allow",
                            "Principal": {"Service": "pods.eks.amazonaws.com"},
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": cfg.account},
                                "ArnEquals": {"aws:SourceArn": cfg.eks_cluster_arn},
                            },
                        }
                    ],
                    "Version": "2012-10-17",
                },
            },
        )
        templates["workloads"].has_resource_properties(
            "AWS::EKS::PodIdentityAssociation",
            {
                "ClusterName": cfg.eks_cluster_name,
                "Namespace": cfg.k8s_namespace,
                "ServiceAccount": service_account,
            },
        )


# ---- the checks can fail: deliberately widened or opened variants are flagged ----


def _api_policy(template):
    role = role_logical_id(template, "imagelake-prod-api")
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            return resource["Properties"]["PolicyDocument"]["Statement"]
    raise AssertionError("API role has no policy")


@pytest.mark.parametrize(
    ("sid", "widen"),
    [
        pytest.param("LakeWrite", lambda st, b: st.update(Resource=f"arn:aws:s3:::{b}/*"), id="whole-bucket"),
        pytest.param(
            "LakeWrite", lambda st, b: st.update(Resource=f"arn:aws:s3:::{b}/raw/*"), id="parent-prefix"
        ),
        pytest.param(
            "LakeWrite", lambda st, b: st.update(Resource=f"arn:aws:s3:::{b}/curated/*"), id="other-prefix"
        ),
        pytest.param("LakeWrite", lambda st, b: st.update(Action="s3:*"), id="wildcard-action"),
        pytest.param("LakeWrite", lambda st, b: st.update(Action="s3:Get*"), id="partial-wildcard-action"),
        pytest.param("LakeWrite", lambda st, b: st.update(Resource="*"), id="any-resource"),
        pytest.param(
            "LakeWrite",
            lambda st, b: st.update(Resource="arn:aws:s3:::imagelake-*/raw/images/*"),
            id="wildcard-bucket",
        ),
        pytest.param(
            "LakeDelete",
            lambda st, b: st.update(Action="s3:PutBucketPolicy", Resource=f"arn:aws:s3:::{b}"),
            id="bucket-action",
        ),
        pytest.param("LakeDelete", lambda st, b: st.update(NotAction=st.pop("Action")), id="not-action"),
        pytest.param("LakeList", lambda st, b: st.pop("Condition"), id="unconditioned-list"),
        pytest.param(
            "LakeList",
            lambda st, b: st.update(Condition={"StringLike": {"s3:prefix": ["*"]}}),
            id="list-everything",
        ),
    ],
)
def test_a_widened_api_role_is_flagged(built, template_json, sid, widen):
    bucket = built.config.lake_bucket_name
    template = copy.deepcopy(template_json["workloads"])
    widen(next(s for s in _api_policy(template) if s["Sid"] == sid), bucket)
    found = role_bucket_grants(template, built.config.role_name("api"), bucket)
    assert found.violations or found.grants != EXPECTED_LAKE["api"][1]


def test_a_role_built_with_a_broad_cdk_grant_is_flagged(built):
    """A real CDK construct, not a hand-edited template: ``grant_read_write`` reaches the whole bucket."""
    app = cdk.App()
    stack = cdk.Stack(
        app, "Widened", env=cdk.Environment(account=built.config.account, region=built.config.region)
    )
    bucket = s3.Bucket.from_bucket_name(stack, "Lake", built.config.lake_bucket_name)
    role = iam.Role(
        stack, "Api", role_name="widened-api", assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com")
    )
    bucket.grant_read_write(role, f"{layout.RAW_IMAGES}/*")
    bucket.grant_delete(role)  # no prefix: every key
    found = role_bucket_grants(
        Template.from_stack(stack).to_json(), "widened-api", built.config.lake_bucket_name
    )
    assert any("not limited to one prefix" in v or "unexpected action" in v for v in found.violations)


def test_a_managed_policy_is_flagged(built, template_json):
    template = copy.deepcopy(template_json["workloads"])
    role = role_logical_id(template, built.config.role_name("api"))
    template["Resources"][role]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/AmazonS3FullAccess"
    ]
    found = role_bucket_grants(template, built.config.role_name("api"), built.config.lake_bucket_name)
    assert any("managed policy" in v for v in found.violations)


@pytest.mark.parametrize(
    "open_bucket",
    [
        pytest.param(
            lambda props, pol: props["PublicAccessBlockConfiguration"].update(BlockPublicPolicy=False),
            id="public-policy-allowed",
        ),
        pytest.param(
            lambda props, pol: props.pop("PublicAccessBlockConfiguration"), id="no-public-access-block"
        ),
        pytest.param(lambda props, pol: props.update(AccessControl="PublicRead"), id="public-acl"),
        pytest.param(lambda props, pol: props.pop("BucketEncryption"), id="unencrypted"),
        pytest.param(
            lambda props, pol: pol.append(
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "*"}
            ),
            id="public-read-policy",
        ),
        pytest.param(lambda props, pol: pol.clear(), id="tls-not-enforced"),
    ],
)
def test_an_opened_bucket_is_flagged(built, template_json, open_bucket):
    template = copy.deepcopy(template_json["lake"])
    name = built.config.lake_bucket_name
    logical_id, bucket = next(
        (k, v)
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::S3::Bucket" and v["Properties"]["BucketName"] == name
    )
    policy = next(
        v
        for v in template["Resources"].values()
        if v["Type"] == "AWS::S3::BucketPolicy" and v["Properties"]["Bucket"] == {"Ref": logical_id}
    )
    open_bucket(bucket["Properties"], policy["Properties"]["PolicyDocument"]["Statement"])
    assert bucket_exposure(template, name) != []


def test_bucket_grants_reads_a_plain_statement_list():
    statements = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/curated/*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"},
    ]
    found = bucket_grants(statements, "b")
    assert found.violations == []
    assert found.grants["read"] == {"curated/"}
