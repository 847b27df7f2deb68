"""The lake bucket's promises: private, encrypted, TLS-only, versioned, and expiring with the retention."""

from __future__ import annotations

from aws_cdk.assertions import Match

from imagelake.lake import layout
from imagelake.settings import RETENTION_DAYS, load_settings
from infra.aws.app import build_app
from infra.aws.policy_check import bucket_exposure
from infra.aws.stacks.lake_stack import NONCURRENT_VERSION_DAYS


def lifecycle_rules(template_json, bucket_name):
    for resource in template_json["Resources"].values():
        if resource["Type"] == "AWS::S3::Bucket" and resource["Properties"]["BucketName"] == bucket_name:
            return {rule["Id"]: rule for rule in resource["Properties"]["LifecycleConfiguration"]["Rules"]}
    raise AssertionError(f"no bucket {bucket_name}")


def test_retention_default_is_the_settings_value():
    assert load_settings({}).retention_days == RETENTION_DAYS


def test_every_zone_expires_after_the_retention_setting(built, template_json):
    rules = lifecycle_rules(template_json["lake"], built.config.lake_bucket_name)
    for zone in layout.ZONES:
        rule = rules[f"expire-{zone}"]
        assert rule["Status"] == "Enabled"
        assert rule["Prefix"] == f"{zone}/"
        assert rule["ExpirationInDays"] == RETENTION_DAYS
    # Nothing else in the lake expires early, and every zone of the layout is covered.
    expiring = {r["Prefix"] for r in rules.values() if "ExpirationInDays" in r}
    assert expiring == {f"{z}/" for z in layout.ZONES}


def test_old_versions_and_incomplete_uploads_are_cleaned_up(built, template_json):
    for bucket in (built.config.lake_bucket_name, built.config.ops_bucket_name):
        rules = lifecycle_rules(template_json["lake"], bucket)
        assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 1
        }
        assert rules["purge-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": NONCURRENT_VERSION_DAYS
        }
        assert rules["remove-expired-delete-markers"]["ExpiredObjectDeleteMarker"] is True


def test_buckets_are_encrypted_private_versioned_and_tls_only(built, templates, template_json):
    for bucket in (built.config.lake_bucket_name, built.config.ops_bucket_name):
        assert bucket_exposure(template_json["lake"], bucket) == []
    templates["lake"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": built.config.lake_bucket_name,
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "BucketKeyEnabled": True,
                            "ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"}),
                        }
                    )
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )
    templates["lake"].has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    templates["lake"].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_retention_from_context_and_from_the_environment(context, tmp_path):
    by_context = build_app(context(retention_days="3"), tmp_path / "a", env={})
    by_env = build_app(context(), tmp_path / "b", env={"IMAGELAKE_RETENTION_DAYS": "5"})
    for built, days in ((by_context, 3), (by_env, 5)):
        from aws_cdk.assertions import Template

        rules = lifecycle_rules(Template.from_stack(built.lake).to_json(), built.config.lake_bucket_name)
        assert {rules[f"expire-{zone}"]["ExpirationInDays"] for zone in layout.ZONES} == {days}
