"""The Kubernetes manifests: valid against the Kubernetes schemas (offline, strict), and keeping their promises."""

from __future__ import annotations

import copy
import json
import re

import kubernetes_validate
import pytest
import yaml

from imagelake import settings
from imagelake.settings import PROJECT_ROOT
from infra.aws.config import API_SERVICE_ACCOUNT, OPTIONAL_CONTEXT

K8S = PROJECT_ROOT / "infra" / "k8s"
#: The Kubernetes minor version the manifests target (EKS standard support).
K8S_VERSION = "1.33"


def kustomization():
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def manifests():
    docs = []
    for rel in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / rel).read_text()) if d]
    return docs


def by_kind(kind):
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_kustomization_lists_every_manifest():
    listed = {K8S / rel for rel in kustomization()["resources"]}
    on_disk = {
        p
        for p in K8S.rglob("*.yaml")
        if p.name != "kustomization.yaml" and p.parent.name not in ("dagster", "prometheus-adapter")
    }
    assert listed == on_disk


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert (
        doc["metadata"].get("namespace", OPTIONAL_CONTEXT["k8s_namespace"])
        == OPTIONAL_CONTEXT["k8s_namespace"]
    )


def test_validation_can_fail():
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_api_deployment_probes_resources_and_hardening():
    deployment = by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "imagelake.api"]
    assert container["ports"][0]["containerPort"] == 8000
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert pod["serviceAccountName"] == API_SERVICE_ACCOUNT
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e} == {
        "imagelake-env"
    }


def test_hpa_scales_the_api_on_requests_in_flight_from_two_replicas():
    from imagelake.api.metrics import ApiMetrics

    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "imagelake-api",
    }
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] > 2
    pods, cpu = hpa["spec"]["metrics"]
    assert pods["type"] == "Pods" and cpu["resource"]["name"] == "cpu"
    name = pods["pods"]["metric"]["name"]
    # The adapter serves that name from a series the API really exposes, scraped from its pods.
    adapter = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    [rule] = [r for r in adapter["rules"]["custom"] if r["name"]["as"] == name]
    series = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
    exposed = {m.name for m in ApiMetrics().registry.collect()}
    assert series == name == "imagelake_http_requests_in_flight" and series in exposed
    assert {m["name"]["as"] for m in adapter["rules"]["custom"]} >= {"imagelake_http_requests_per_second"}
    assert "imagelake_http_requests" in exposed  # the _total counter's family
    annotations = by_kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(
        by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    )


def test_metrics_are_not_served_through_the_public_load_balancer():
    ingress = by_kind("Ingress")
    [metrics] = [p for p in ingress["spec"]["rules"][0]["http"]["paths"] if p["path"] == "/metrics"]
    assert metrics["pathType"] == "Exact"
    action = metrics["backend"]["service"]["name"]
    assert metrics["backend"]["service"]["port"]["name"] == "use-annotation"
    answer = json.loads(ingress["metadata"]["annotations"][f"alb.ingress.kubernetes.io/actions.{action}"])
    assert answer["type"] == "fixed-response" and answer["fixedResponseConfig"]["statusCode"] == "404"


def test_service_ingress_pdb_and_network_policy_fit_together():
    selector = by_kind("Deployment")["spec"]["selector"]["matchLabels"]
    service = by_kind("Service")
    assert service["spec"]["selector"] == selector
    ingress = by_kind("Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][-1]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert by_kind("PodDisruptionBudget")["spec"]["minAvailable"] >= 1
    policy = by_kind("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 9098, 80} == egress_ports  # DNS, AWS APIs, MSK IAM, the Pod Identity agent


def env_names_the_code_reads():
    """Every environment variable the code reads: imagelake.settings and dbt's env_var() calls."""
    names = set(
        re.findall(r'"((?:IMAGELAKE|AWS)_[A-Z_]+)"', (PROJECT_ROOT / "imagelake" / "settings.py").read_text())
    )
    for path in (PROJECT_ROOT / "dbt_project").rglob("*.yml"):
        if path.is_file() and "target" not in path.relative_to(PROJECT_ROOT).parts:
            names |= set(re.findall(r"env_var\('([A-Z_]+)'", path.read_text()))
    return names


def test_config_map_sets_only_variables_the_code_reads():
    data = by_kind("ConfigMap")["data"]
    assert set(data) <= env_names_the_code_reads(), set(data) - env_names_the_code_reads()
    assert data["IMAGELAKE_ENV"] == "prod"
    assert data["IMAGELAKE_UPLOADS_TOPIC"] == settings.UPLOADS_TOPIC
    assert data["IMAGELAKE_CATALOG_TABLE"] == settings.CATALOG_TABLE
    assert data["IMAGELAKE_SPECTRUM_SCHEMA"] == settings.SPECTRUM_SCHEMA
    assert data["IMAGELAKE_API_HOST"] == "0.0.0.0"


def test_prod_settings_load_from_the_config_map_and_a_secret():
    env = {**by_kind("ConfigMap")["data"], "IMAGELAKE_API_KEYS": "k:client"}
    loaded = settings.load_settings(env)
    assert loaded.is_prod and loaded.lake_url.startswith("s3://") and loaded.dbt_target == "prod"
    assert loaded.dynamodb_endpoint == ""  # AWS itself, not DynamoDB Local
