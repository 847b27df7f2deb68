"""Who may touch which prefixes of the lake: one access spec per role, turned into IAM statements.

Prefixes are spelled by :mod:`imagelake.lake.layout`, never here, so a role's
reach follows the code's key layout. Each role gets only the object actions
its code performs, on only the prefixes it uses; listing is allowed on the
bucket only with an ``s3:prefix`` condition inside those prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam

from imagelake.lake import layout

# Lake prefixes, each ending in "/" so "raw/images/" never matches "raw/images-old/".
RAW_IMAGES = f"{layout.RAW_IMAGES}/"
RAW_EVENTS = f"{layout.RAW_EVENTS}/"
RAW_DEAD_LETTERS = f"{layout.RAW_DEAD_LETTERS}/"
CURATED = f"{layout.CURATED}/"
DERIVATIVES = f"{layout.DERIVATIVES}/"
#: Every batch-written Parquet table's folder (what Glue and Spectrum read).
TABLES = tuple(sorted(layout.TABLE_PREFIXES.values()))

# Prefixes of the ops bucket (code and logs, never lake data).
SPARK_CODE = "spark/"
EMR_LOGS = "emr-logs/"
PIPES = "pipes/"
DAGSTER_LOGS = "dagster-logs/"


@dataclass(frozen=True)
class PrefixAccess:
    """Object access to some prefixes of one bucket."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()

    @property
    def listed(self) -> tuple[str, ...]:
        """Listing follows reading and deleting (GC lists before it deletes)."""
        return tuple(sorted(set(self.read) | set(self.delete)))


#: The upload API stores each upload create-only under raw/images/ and removes it again
#: when the catalog or Kafka refuses the upload (imagelake/api/upload.py). It reads nothing from the lake.
API_LAKE = PrefixAccess(write=(RAW_IMAGES,), delete=(RAW_IMAGES,))

#: Dagster's real-time runs read uploaded images and write the batch tables; retention and
#: garbage collection run on EMR, so Dagster deletes nothing.
DAGSTER_LAKE = PrefixAccess(
    read=(RAW_IMAGES, RAW_EVENTS, RAW_DEAD_LETTERS, CURATED, DERIVATIVES),
    write=(RAW_EVENTS, RAW_DEAD_LETTERS, CURATED),
)
#: Dagster hands Pipes messages to and from EMR jobs, reads their logs, and keeps its own
#: compute logs (the Helm values' S3ComputeLogManager).
DAGSTER_OPS = PrefixAccess(read=(PIPES, EMR_LOGS, DAGSTER_LOGS), write=(PIPES, DAGSTER_LOGS))

#: The Spark jobs: derivatives (write), compaction (rewrite curated/raw tables), garbage
#: collection and retention (delete) across the lake's zones, and nothing outside them.
EMR_LAKE = PrefixAccess(
    read=(RAW_IMAGES, RAW_EVENTS, RAW_DEAD_LETTERS, CURATED, DERIVATIVES),
    write=(RAW_EVENTS, RAW_DEAD_LETTERS, CURATED, DERIVATIVES),
    delete=(RAW_IMAGES, RAW_EVENTS, RAW_DEAD_LETTERS, CURATED, DERIVATIVES),
)
#: EMR reads the Spark package, writes its logs and exchanges Pipes messages.
EMR_OPS = PrefixAccess(read=(SPARK_CODE, PIPES), write=(EMR_LOGS, PIPES))

#: Redshift Spectrum reads the Parquet tables Glue describes, nothing else.
SPECTRUM_LAKE = PrefixAccess(read=TABLES)


def bucket_arn(bucket_name: str) -> str:
    return f"arn:aws:s3:::{bucket_name}"


def object_arns(bucket_name: str, prefixes: tuple[str, ...]) -> list[str]:
    return [f"{bucket_arn(bucket_name)}/{p}*" for p in prefixes]


def prefix_statements(bucket_name: str, access: PrefixAccess, sid: str) -> list[iam.PolicyStatement]:
    """IAM statements granting ``access`` to one bucket (ARNs are literal: checkable in the template)."""
    statements = []
    for verb, actions, prefixes in (
        ("Read", ["s3:GetObject"], access.read),
        ("Write", ["s3:PutObject", "s3:AbortMultipartUpload"], access.write),
        ("Delete", ["s3:DeleteObject"], access.delete),
    ):
        if prefixes:
            statements.append(
                iam.PolicyStatement(
                    sid=f"{sid}{verb}", actions=actions, resources=object_arns(bucket_name, prefixes)
                )
            )
    if access.listed:
        statements.append(
            iam.PolicyStatement(
                sid=f"{sid}List",
                actions=["s3:ListBucket"],
                resources=[bucket_arn(bucket_name)],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in access.listed]}},
            )
        )
    return statements


def kms_statement(key_arn: str, region: str, access: PrefixAccess, sid: str) -> iam.PolicyStatement | None:
    """Use of the lake key, only through S3, only for what ``access`` does."""
    actions = []
    if access.read or access.write:
        actions.append("kms:Decrypt")  # multipart uploads also decrypt their parts
    if access.write:
        actions.append("kms:GenerateDataKey")
    if not actions:
        return None
    return iam.PolicyStatement(
        sid=sid,
        actions=actions,
        resources=[key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    )
