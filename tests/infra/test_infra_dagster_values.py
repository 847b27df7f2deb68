"""The Dagster Helm values: keys the chart documents, valid Kubernetes objects inside, and wired to our code.

The chart cannot be downloaded here, so it is not rendered. What is checked
offline: every key we set exists in the chart's documented values (the key
tree below, transcribed from the chart's values.schema.json for 1.x: only the
sections we use), the Kubernetes objects embedded in the values validate
against the Kubernetes schemas, and the values agree with the code location,
the image, the IAM binding and the CDK outputs.
"""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest
import yaml

from imagelake.settings import PROJECT_ROOT
from infra.aws import access
from infra.aws.config import DAGSTER_SERVICE_ACCOUNT, DeployConfig

VALUES = PROJECT_ROOT / "infra" / "k8s" / "dagster" / "values.yaml"
K8S_VERSION = "1.33"

# Leaf kinds: a Python type, or "k8s:<what>" for an embedded Kubernetes object validated below.
_ENV_REFS = "list:name"  # [{name: ...}] (ConfigMapEnvSource / SecretEnvSource)
_IMAGE = {"repository": str, "tag": (str, int), "pullPolicy": str}
_POD_PARTS = {
    "resources": "k8s:resources",
    "podSecurityContext": "k8s:podSecurityContext",
    "securityContext": "k8s:securityContext",
    "nodeSelector": dict,
    "affinity": dict,
    "tolerations": list,
    "annotations": dict,
    "labels": dict,
    "env": (dict, list),
    "envConfigMaps": _ENV_REFS,
    "envSecrets": _ENV_REFS,
    "livenessProbe": "k8s:probe",
    "readinessProbe": "k8s:probe",
    "startupProbe": "k8s:probe",
    "volumeMounts": list,
    "volumes": list,
    "schedulerName": str,
}
CHART_KEYS = {
    "global": {
        "postgresqlSecretName": str,
        "dagsterHome": str,
        "serviceAccountName": str,
        "celeryConfigSecretName": str,
    },
    "serviceAccount": {"create": bool, "name": str, "annotations": dict},
    "telemetry": {"enabled": bool},
    "dagsterWebserver": {
        "replicaCount": int,
        "image": _IMAGE,
        "nameOverride": str,
        "pathPrefix": str,
        "service": dict,
        "workspace": dict,
        "deploymentLabels": dict,
        "enableReadOnly": bool,
        "dbStatementTimeout": int,
        "dbPoolRecycle": int,
        "logLevel": str,
        **_POD_PARTS,
    },
    "dagster-user-deployments": {
        "enabled": bool,
        "enableSubchart": bool,
        "imagePullSecrets": list,
        "deployments": [
            {
                "name": str,
                "image": _IMAGE,
                "dagsterApiGrpcArgs": list,
                "codeServerArgs": list,
                "includeConfigInLaunchedRuns": {"enabled": bool},
                "deploymentNamespace": str,
                "port": int,
                "initContainers": list,
                "sidecarContainers": list,
                **_POD_PARTS,
            }
        ],
    },
    "runLauncher": {
        "type": str,
        "config": {
            "k8sRunLauncher": {
                "image": _IMAGE,
                "imagePullPolicy": str,
                "jobNamespace": str,
                "loadInclusterConfig": bool,
                "kubeconfigFile": str,
                "envConfigMaps": _ENV_REFS,
                "envSecrets": _ENV_REFS,
                "envVars": list,
                "volumeMounts": list,
                "volumes": list,
                "labels": dict,
                "failPodOnRunFailure": bool,
                "resources": "k8s:resources",
                "schedulerName": str,
                "securityContext": "k8s:securityContext",
                "runK8sConfig": dict,
            },
        },
    },
    "postgresql": {
        "image": dict,
        "enabled": bool,
        "postgresqlHost": str,
        "postgresqlUsername": str,
        "postgresqlPassword": str,
        "postgresqlDatabase": str,
        "postgresqlParams": dict,
        "postgresqlScheme": str,
        "service": {"port": int},
    },
    "generatePostgresqlPasswordSecret": bool,
    "dagsterDaemon": {
        "enabled": bool,
        "image": _IMAGE,
        "runCoordinator": {
            "enabled": bool,
            "type": str,
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": int,
                    "tagConcurrencyLimits": list,
                    "dequeueIntervalSeconds": int,
                    "dequeueUseThreads": bool,
                    "dequeueNumWorkers": int,
                }
            },
        },
        "heartbeatTolerance": int,
        "deploymentLabels": dict,
        "runMonitoring": dict,
        "runRetries": dict,
        "sensors": dict,
        "schedules": dict,
        **_POD_PARTS,
    },
    "computeLogManager": {
        "type": str,
        "config": {
            "s3ComputeLogManager": {
                "bucket": str,
                "localDir": str,
                "prefix": str,
                "useSsl": bool,
                "verify": bool,
                "verifyCertPath": str,
                "endpointUrl": str,
                "skipEmptyFiles": bool,
                "uploadInterval": int,
                "uploadExtraArgs": dict,
                "showUrlOnly": bool,
                "region": str,
            }
        },
    },
    "concurrency": {
        "pools": {"defaultLimit": int, "granularity": str, "opGranularityRunBuffer": int},
        "runs": {"maxConcurrentRuns": int, "tagConcurrencyLimits": list},
    },
    "rabbitmq": {"enabled": bool},
    "redis": {"enabled": bool},
    "flower": {"enabled": bool},
    "ingress": {"enabled": bool},
}
ENUMS = {
    ("runLauncher", "type"): {"CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"},
    ("dagsterDaemon", "runCoordinator", "type"): {"QueuedRunCoordinator", "CustomRunCoordinator"},
    ("computeLogManager", "type"): {
        "NoOpComputeLogManager",
        "AzureBlobComputeLogManager",
        "GCSComputeLogManager",
        "S3ComputeLogManager",
        "CustomComputeLogManager",
    },
}


def values():
    return yaml.safe_load(VALUES.read_text())


def check_keys(node, spec, path=()):
    """Every key in ``node`` is documented in ``spec``; returns (problems, embedded k8s objects)."""
    problems, embedded = [], []
    if isinstance(spec, dict):
        if not isinstance(node, dict):
            return [f"{'.'.join(path)}: expected a mapping"], []
        for key, value in node.items():
            if key not in spec:
                problems.append(f"{'.'.join((*path, key))}: not a key of the Dagster chart")
                continue
            p, e = check_keys(value, spec[key], (*path, key))
            problems += p
            embedded += e
    elif isinstance(spec, list):
        for i, item in enumerate(node if isinstance(node, list) else []):
            p, e = check_keys(item, spec[0], (*path, str(i)))
            problems += p
            embedded += e
    elif spec == _ENV_REFS:
        if not (isinstance(node, list) and all(isinstance(i, dict) and set(i) == {"name"} for i in node)):
            problems.append(f"{'.'.join(path)}: expected a list of {{name: ...}}")
    elif isinstance(spec, str) and spec.startswith("k8s:"):
        embedded.append((spec[4:], node, ".".join(path)))
    elif node is not None and not isinstance(node, spec):
        problems.append(f"{'.'.join(path)}: {node!r} is not {spec}")
    if tuple(path) in ENUMS and node not in ENUMS[tuple(path)]:
        problems.append(f"{'.'.join(path)}: {node!r} not one of {sorted(ENUMS[tuple(path)])}")
    return problems, embedded


def as_pod(kind, obj):
    container = {"name": "c", "image": "i"}
    pod_spec = {"containers": [container]}
    if kind == "podSecurityContext":
        pod_spec["securityContext"] = obj
    elif kind == "probe":
        container["livenessProbe"] = obj
    else:
        container[kind] = obj
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec}


def test_values_use_only_keys_the_chart_documents():
    problems, _ = check_keys(values(), CHART_KEYS)
    assert problems == []


def test_the_key_check_can_fail():
    broken = values()
    broken["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = [{"name": "x"}]  # typo
    broken["runLauncher"]["type"] = "K8sLauncher"
    broken["dagsterWebserver"]["envConfigMaps"] = ["imagelake-env"]
    problems, _ = check_keys(broken, CHART_KEYS)
    assert len(problems) == 3, problems


def test_embedded_kubernetes_objects_are_valid():
    _, embedded = check_keys(values(), CHART_KEYS)
    assert len(embedded) >= 5
    for kind, obj, path in embedded:
        try:
            kubernetes_validate.validate(as_pod(kind, obj), K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path}: {exc}")


def test_required_sections_for_our_setup():
    v = values()
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    assert v["postgresql"]["enabled"] is False and v["postgresql"]["postgresqlHost"]
    assert v["generatePostgresqlPasswordSecret"] is False and v["global"]["postgresqlSecretName"]
    assert v["dagsterDaemon"]["enabled"] is True
    assert v["dagster-user-deployments"]["enabled"] is True
    assert not any(v[k]["enabled"] for k in ("rabbitmq", "redis", "flower"))


def test_code_locations_match_workspace_yaml_and_the_image():
    deployments = values()["dagster-user-deployments"]["deployments"]
    locations = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    workdir = re.findall(r"^WORKDIR (\S+)", (PROJECT_ROOT / "Dockerfile").read_text(), re.M)[-1]
    modules = {}
    for deployment in deployments:
        args = deployment["dagsterApiGrpcArgs"]
        modules[deployment["name"]] = args[args.index("--module-name") + 1]
        assert args[args.index("--working-directory") + 1] == workdir
        assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert modules == {
        x["python_module"]["location_name"]: x["python_module"]["module_name"] for x in locations
    }
    assert len({d["port"] for d in deployments}) == len(deployments)


def test_values_agree_with_the_aws_stacks(context):
    config = DeployConfig.from_context(context().get, env={})
    v = values()
    assert v["global"]["serviceAccountName"] == v["serviceAccount"]["name"] == DAGSTER_SERVICE_ACCOUNT
    logs = v["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert logs["bucket"] == config.ops_bucket_name
    assert f"{logs['prefix']}/" == access.DAGSTER_LOGS
    example = json.loads((PROJECT_ROOT / "infra" / "aws" / "example-context.json").read_text())
    for deployment in v["dagster-user-deployments"]["deployments"]:
        assert deployment["image"]["repository"].endswith(f".amazonaws.com/{config.name('app')}")
        assert f"{example['account']}.dkr.ecr.{example['region']}" in deployment["image"]["repository"]
