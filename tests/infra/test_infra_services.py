"""Events, catalog, processing, warehouse and registry: each promise of the issue, asserted on the templates."""

from __future__ import annotations

from aws_cdk.assertions import Match

from imagelake import settings
from imagelake.lake import layout
from imagelake.lake.schemas import SCHEMAS
from infra.aws import access
from infra.aws.stacks.events_stack import MSK_SERVERLESS_REPLICATION
from infra.aws.stacks.warehouse_stack import glue_type


def test_msk_serverless_uses_iam_and_creates_the_uploads_topic(built, templates):
    templates["events"].has_resource_properties(
        "AWS::MSK::ServerlessCluster",
        {
            "ClusterName": built.config.msk_cluster_name,
            "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
            "VpcConfigs": [Match.object_like({"SubnetIds": list(built.config.private_subnet_ids)})],
        },
    )
    templates["events"].has_resource_properties(
        "AWS::MSK::Topic",
        {
            "TopicName": settings.UPLOADS_TOPIC,
            "PartitionCount": settings.UPLOADS_TOPIC_PARTITIONS,
            "ReplicationFactor": MSK_SERVERLESS_REPLICATION,
        },
    )
    # Brokers accept IAM clients from the EKS pods only.
    templates["events"].has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupIngress": [
                Match.object_like(
                    {
                        "FromPort": 9098,
                        "ToPort": 9098,
                        "SourceSecurityGroupId": built.config.eks_client_security_group_id,
                    }
                )
            ]
        },
    )


def test_topic_can_be_left_to_the_admin_api(context, tmp_path):
    from aws_cdk.assertions import Template

    from infra.aws.app import build_app

    built = build_app(context(topic_via_cloudformation="false"), tmp_path, env={})
    Template.from_stack(built.events).resource_count_is("AWS::MSK::Topic", 0)


def test_catalog_is_on_demand_with_ttl_and_point_in_time_recovery(templates):
    templates["catalog"].has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": settings.CATALOG_TABLE,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": settings.CATALOG_PARTITION_KEY, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": settings.CATALOG_PARTITION_KEY, "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": settings.CATALOG_TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "DeletionProtectionEnabled": True,
        },
    )
    templates["catalog"].has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})


def test_emr_job_role_may_only_update_catalog_items(built, template_json):
    cfg = built.config
    table_arn = f"arn:aws:dynamodb:{cfg.region}:{cfg.account}:table/{cfg.catalog_table}"
    dynamo = [
        statement
        for resource in template_json["processing"]["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if any(str(a).startswith("dynamodb:") for a in _as_list(statement["Action"]))
    ]
    assert dynamo == [
        {
            "Sid": "CatalogDerivativeKeys",
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": table_arn,
        }
    ]


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_emr_serverless_application_has_capacity_limits_and_stops_when_idle(built, templates):
    cfg = built.config
    templates["processing"].has_resource_properties(
        "AWS::EMRServerless::Application",
        {
            "Type": "SPARK",
            "ReleaseLabel": cfg.emr_release_label,
            "MaximumCapacity": {"Cpu": f"{cfg.emr_max_vcpu} vCPU", "Memory": f"{cfg.emr_max_memory_gb} GB"},
            "AutoStopConfiguration": {"Enabled": True, "IdleTimeoutMinutes": cfg.emr_idle_minutes},
            "MonitoringConfiguration": Match.object_like(
                {
                    "S3MonitoringConfiguration": Match.object_like(
                        {"LogUri": f"s3://{cfg.ops_bucket_name}/{access.EMR_LOGS}"}
                    )
                }
            ),
        },
    )
    templates["processing"].has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": cfg.role_name("emr-job"),
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Principal": {"Service": "emr-serverless.amazonaws.com"},
                            "Condition": Match.object_like(
                                {"StringEquals": {"aws:SourceAccount": cfg.account}}
                            ),
                        }
                    )
                ]
            },
        },
    )


def test_glue_tables_mirror_the_code_schemas_and_layout(built, template_json):
    tables = {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]
        for r in template_json["warehouse"]["Resources"].values()
        if r["Type"] == "AWS::Glue::Table"
    }
    assert set(tables) == set(layout.TABLE_PREFIXES)
    for name, props in tables.items():
        assert props["DatabaseName"] == settings.GLUE_DATABASE
        sd = props["TableInput"]["StorageDescriptor"]
        assert sd["Location"] == f"s3://{built.config.lake_bucket_name}/{layout.TABLE_PREFIXES[name]}"
        assert sd["Columns"] == [{"Name": f.name, "Type": glue_type(f.type)} for f in SCHEMAS[name]]
        assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_redshift_serverless_is_private_and_spectrum_has_its_role(built, templates):
    cfg = built.config
    templates["warehouse"].has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": Match.object_like({"Name": settings.GLUE_DATABASE})}
    )
    templates["warehouse"].has_resource_properties(
        "AWS::RedshiftServerless::Namespace",
        {
            "NamespaceName": cfg.name("warehouse"),
            "ManageAdminPassword": True,
            "IamRoles": [Match.any_value()],
            "DefaultIamRoleArn": Match.any_value(),
        },
    )
    templates["warehouse"].has_resource_properties(
        "AWS::RedshiftServerless::Workgroup",
        {
            "PubliclyAccessible": False,
            "EnhancedVpcRouting": True,
            "BaseCapacity": cfg.redshift_base_rpu,
            "MaxCapacity": cfg.redshift_max_rpu,
            "SubnetIds": list(cfg.private_subnet_ids),
        },
    )
    namespace = templates["warehouse"].find_resources("AWS::RedshiftServerless::Namespace")
    assert "AdminUserPassword" not in next(iter(namespace.values()))["Properties"]


def test_registry_scans_and_keeps_tags_immutable(built, templates):
    templates["registry"].has_resource_properties(
        "AWS::ECR::Repository",
        {
            "RepositoryName": built.config.name("app"),
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "IMMUTABLE",
        },
    )
