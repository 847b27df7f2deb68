"""Bad deployment input stops synth with a message that names the value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imagelake.settings import PROJECT_ROOT
from infra.aws.app import main, parse_args
from infra.aws.config import OPTIONAL_CONTEXT, REQUIRED_CONTEXT, DeployConfig, InfraConfigError

APP = PROJECT_ROOT / "infra" / "aws" / "app.py"


@pytest.mark.parametrize("days", ["0", "-1", "-30"])
def test_retention_below_one_day_in_context_is_refused(context, days):
    with pytest.raises(InfraConfigError, match=rf"retention_days.*at least 1 day, got {days}"):
        DeployConfig.from_context(context(retention_days=days).get, env={})


@pytest.mark.parametrize("days", ["0", "-2"])
def test_retention_below_one_day_in_the_environment_is_refused(context, days):
    with pytest.raises(InfraConfigError, match=rf"IMAGELAKE_RETENTION_DAYS must be >= 1, got {days}"):
        DeployConfig.from_context(context().get, env={"IMAGELAKE_RETENTION_DAYS": days})


def test_retention_that_is_not_a_number_is_refused(context):
    with pytest.raises(InfraConfigError, match=r"retention_days.*whole number"):
        DeployConfig.from_context(context(retention_days="a week").get, env={})


@pytest.mark.parametrize("key", sorted(REQUIRED_CONTEXT))
def test_each_missing_required_context_value_is_named(context, key):
    values = context()
    del values[key]
    with pytest.raises(InfraConfigError, match=rf"missing required CDK context value '{key}'"):
        DeployConfig.from_context(values.get, env={})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("account", "12345", "'account' is malformed"),
        ("region", "Europe", "'region' is malformed"),
        ("env_name", "Prod_Env", "'env_name' is malformed"),
        ("vpc_id", "vpc-xyz", "'vpc_id' is malformed"),
        (
            "private_subnet_ids",
            "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2",
            "at least 3 distinct subnets",
        ),
        (
            "private_subnet_ids",
            "subnet-0aaaaaaaaaaaaaaa1,bogus,subnet-0ccccccccccccccc3",
            "malformed id 'bogus'",
        ),
        ("eks_client_security_group_id", "default", "'eks_client_security_group_id' is malformed"),
        ("k8s_namespace", "Image_Lake", "'k8s_namespace' is not a Kubernetes name"),
        ("emr_max_vcpu", "0", "'emr_max_vcpu' must be >= 1"),
        ("redshift_base_rpu", "4", "'redshift_base_rpu' must be >= 8"),
        ("redshift_max_rpu", "8", "'redshift_max_rpu' must be >= 8"),
        ("topic_via_cloudformation", "maybe", "must be true or false"),
    ],
)
def test_malformed_context_values_are_named(context, key, value, message):
    values = context(**{key: value})
    if key == "redshift_max_rpu":
        values["redshift_base_rpu"] = "16"
        message = "'redshift_max_rpu' must be >= 16"
    with pytest.raises(InfraConfigError, match=message):
        DeployConfig.from_context(values.get, env={})


def test_optional_context_has_documented_defaults(context):
    config = DeployConfig.from_context(context().get, env={})
    assert config.k8s_namespace == OPTIONAL_CONTEXT["k8s_namespace"]
    assert config.emr_release_label == OPTIONAL_CONTEXT["emr_release_label"]


def test_entry_point_exits_2_with_the_message(capsys, tmp_path):
    assert main(["-c", "account=123456789012", "-o", str(tmp_path)]) == 2
    assert "missing required CDK context value 'region'" in capsys.readouterr().err
    with pytest.raises(InfraConfigError, match="unknown argument"):
        parse_args(["--bogus"])


def test_synth_from_the_command_line_fails_clearly_on_zero_retention(tmp_path):
    """The real entry point in a fresh process, as `make infra-synth` runs it."""
    context_file = PROJECT_ROOT / "infra" / "aws" / "example-context.json"
    result = subprocess.run(
        [
            sys.executable,
            str(APP),
            "--context-file",
            str(context_file),
            "-c",
            "retention_days=0",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "retention_days" in result.stderr and "at least 1 day, got 0" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))
