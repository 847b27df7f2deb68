"""What one deployment of imagelake on AWS needs to know, read from CDK context and imagelake's settings.

Every value that differs between AWS accounts comes from CDK context
(``-c key=value`` on the command line, ``cdk.json`` or ``cdk.context.json``);
every name the code also uses (topic, catalog table, lake prefixes, retention)
comes from :mod:`imagelake.settings` and :mod:`imagelake.lake.layout`, so the
infrastructure and the code cannot disagree about a name.

Bad input fails here, before any construct exists, with a message that names
the value: a missing context key, a malformed id, or a retention below one day.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imagelake import settings as imagelake_settings
from imagelake.settings import SettingsError, load_settings

#: Context keys a deployment must set, and what each one is.
REQUIRED_CONTEXT: dict[str, str] = {
    "account": "the 12-digit AWS account id to deploy into",
    "region": "the AWS region to deploy into, e.g. eu-west-1",
    "env_name": "a short deployment name used in every resource name, e.g. prod",
    "vpc_id": "the VPC of the EKS cluster (MSK and Redshift get their network interfaces there)",
    "private_subnet_ids": "comma-separated private subnet ids of that VPC, in at least 3 availability zones",
    "eks_cluster_name": "the EKS cluster that runs the upload API and Dagster (roles bind to its pods)",
    "eks_client_security_group_id": "the security group of the EKS pods/nodes, allowed into MSK and Redshift",
}

#: Optional context keys and their defaults.
OPTIONAL_CONTEXT: dict[str, str] = {
    "k8s_namespace": "imagelake",
    "retention_days": "",  # empty: imagelake.settings (IMAGELAKE_RETENTION_DAYS or RETENTION_DAYS)
    "emr_release_label": "emr-spark-8.0.0",  # Spark 4.0.x, Python 3.11: matches the PySpark 4 jobs
    "emr_max_vcpu": "64",
    "emr_max_memory_gb": "256",
    "emr_idle_minutes": "15",
    "redshift_base_rpu": "8",
    "redshift_max_rpu": "32",
    "topic_via_cloudformation": "true",
}

#: Kubernetes service accounts the roles are bound to (EKS Pod Identity).
API_SERVICE_ACCOUNT = "imagelake-api"
DAGSTER_SERVICE_ACCOUNT = "dagster"

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ENV_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
_VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
_K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_EKS_NAME_RE = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")


class InfraConfigError(ValueError):
    """A deployment value is missing or malformed; the message names it and says how to set it."""


def _text(get: Callable[[str], Any], key: str) -> str:
    value = get(key)
    return "" if value is None else str(value).strip()


def check_required(get: Callable[[str], Any]) -> None:
    """Name every missing required value at once, so one run tells the whole story."""
    missing = [key for key in REQUIRED_CONTEXT if not _text(get, key)]
    if missing:
        raise InfraConfigError(
            "; ".join(
                f"missing required CDK context value {key!r} ({REQUIRED_CONTEXT[key]})" for key in missing
            )
            + ". Pass -c key=value, or put them in the JSON file given to --context-file "
            "(infra/aws/example-context.json shows every key)"
        )


def _required(get: Callable[[str], Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = _text(get, key)
    if pattern is not None and not pattern.match(value):
        raise InfraConfigError(f"CDK context value {key!r} is malformed: {value!r} ({REQUIRED_CONTEXT[key]})")
    return value


def _optional_int(get: Callable[[str], Any], key: str, minimum: int) -> int:
    raw = _text(get, key) or OPTIONAL_CONTEXT[key]
    try:
        value = int(raw)
    except ValueError:
        raise InfraConfigError(f"CDK context value {key!r} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise InfraConfigError(f"CDK context value {key!r} must be >= {minimum}, got {value}")
    return value


def resolve_retention_days(context_value: str, env: Mapping[str, str] | None = None) -> int:
    """The retention in days: the ``retention_days`` context value if set, else imagelake's settings.

    Lifecycle rules, the catalog TTL and the code's own retention must agree,
    so a value below one day is refused here with a clear message rather than
    synthesizing a template CloudFormation would reject (or one that deletes
    everything at once).
    """
    if context_value:
        try:
            days = int(context_value)
        except ValueError:
            raise InfraConfigError(
                f"CDK context value 'retention_days' must be a whole number of days, got {context_value!r}"
            ) from None
        source = "CDK context value 'retention_days'"
    else:
        try:
            days = load_settings(env).retention_days
        except SettingsError as exc:
            raise InfraConfigError(f"retention from imagelake settings is invalid: {exc}") from None
        source = "imagelake.settings retention (IMAGELAKE_RETENTION_DAYS)"
    if days < 1:
        raise InfraConfigError(
            f"{source} must be at least 1 day, got {days}: S3 lifecycle expiry and the catalog TTL "
            "need a positive number of days"
        )
    return days


@dataclass(frozen=True)
class DeployConfig:
    """One deployment's values; build it with :meth:`from_context`."""

    account: str
    region: str
    env_name: str
    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    eks_cluster_name: str
    eks_client_security_group_id: str
    k8s_namespace: str
    retention_days: int
    emr_release_label: str
    emr_max_vcpu: int
    emr_max_memory_gb: int
    emr_idle_minutes: int
    redshift_base_rpu: int
    redshift_max_rpu: int
    topic_via_cloudformation: bool

    # Names shared with the code, from imagelake.settings (one spelling each).
    uploads_topic: str = imagelake_settings.UPLOADS_TOPIC
    uploads_topic_partitions: int = imagelake_settings.UPLOADS_TOPIC_PARTITIONS
    catalog_table: str = imagelake_settings.CATALOG_TABLE
    catalog_partition_key: str = imagelake_settings.CATALOG_PARTITION_KEY
    catalog_ttl_attribute: str = imagelake_settings.CATALOG_TTL_ATTRIBUTE
    glue_database: str = imagelake_settings.GLUE_DATABASE
    spectrum_schema: str = imagelake_settings.SPECTRUM_SCHEMA

    @classmethod
    def from_context(cls, get: Callable[[str], Any], env: Mapping[str, str] | None = None) -> DeployConfig:
        """Read and check every value; ``get`` is ``app.node.try_get_context`` or ``dict.get``."""
        check_required(get)
        subnets = tuple(
            s.strip() for s in _required(get, "private_subnet_ids").replace(" ", ",").split(",") if s.strip()
        )
        for subnet in subnets:
            if not _SUBNET_RE.match(subnet):
                raise InfraConfigError(
                    f"CDK context value 'private_subnet_ids' has a malformed id {subnet!r}"
                )
        if len(set(subnets)) < 3:
            raise InfraConfigError(
                "CDK context value 'private_subnet_ids' needs at least 3 distinct subnets in 3 availability "
                f"zones (Redshift Serverless requires three), got {len(set(subnets))}"
            )
        namespace = _text(get, "k8s_namespace") or OPTIONAL_CONTEXT["k8s_namespace"]
        if not _K8S_NAME_RE.match(namespace):
            raise InfraConfigError(
                f"CDK context value 'k8s_namespace' is not a Kubernetes name: {namespace!r}"
            )
        topic_flag = (
            _text(get, "topic_via_cloudformation") or OPTIONAL_CONTEXT["topic_via_cloudformation"]
        ).lower()
        if topic_flag not in ("true", "false"):
            raise InfraConfigError(
                f"CDK context value 'topic_via_cloudformation' must be true or false, got {topic_flag!r}"
            )
        base_rpu = _optional_int(get, "redshift_base_rpu", 8)
        max_rpu = _optional_int(get, "redshift_max_rpu", base_rpu)
        return cls(
            account=_required(get, "account", _ACCOUNT_RE),
            region=_required(get, "region", _REGION_RE),
            env_name=_required(get, "env_name", _ENV_RE),
            vpc_id=_required(get, "vpc_id", _VPC_RE),
            private_subnet_ids=subnets,
            eks_cluster_name=_required(get, "eks_cluster_name", _EKS_NAME_RE),
            eks_client_security_group_id=_required(get, "eks_client_security_group_id", _SG_RE),
            k8s_namespace=namespace,
            retention_days=resolve_retention_days(_text(get, "retention_days"), env),
            emr_release_label=_text(get, "emr_release_label") or OPTIONAL_CONTEXT["emr_release_label"],
            emr_max_vcpu=_optional_int(get, "emr_max_vcpu", 1),
            emr_max_memory_gb=_optional_int(get, "emr_max_memory_gb", 1),
            emr_idle_minutes=_optional_int(get, "emr_idle_minutes", 1),
            redshift_base_rpu=base_rpu,
            redshift_max_rpu=max_rpu,
            topic_via_cloudformation=topic_flag == "true",
        )

    # ---- names derived from the deployment name (the one place they are spelled) ----

    def name(self, suffix: str) -> str:
        """``imagelake-<env>-<suffix>``: the prefix of every resource this app names."""
        return f"imagelake-{self.env_name}-{suffix}"

    @property
    def lake_bucket_name(self) -> str:
        return f"{self.name('lake')}-{self.account}-{self.region}"

    @property
    def ops_bucket_name(self) -> str:
        """Spark package, EMR logs and Dagster Pipes messages: never lake data."""
        return f"{self.name('ops')}-{self.account}-{self.region}"

    @property
    def msk_cluster_name(self) -> str:
        return self.name("events")

    @property
    def eks_cluster_arn(self) -> str:
        return f"arn:aws:eks:{self.region}:{self.account}:cluster/{self.eks_cluster_name}"

    def role_name(self, purpose: str) -> str:
        return self.name(purpose)

    def role_arn(self, purpose: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.role_name(purpose)}"
