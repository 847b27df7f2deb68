"""The container image's environment can load everything the Helm values and the instance configs name.

The environment is built here the way the Dockerfile builds it (``uv sync --locked
--no-default-groups --extra deploy``, from uv's cache), in a temp dir. In it,
every class of the ``dagster.yaml`` the chart renders from our values (run
launcher, run/event/schedule storage, compute logs, run coordinator, scheduler)
and of the local instance config is imported, and so is each code location's
module with the production ConfigMap's environment, as ``dagster api grpc`` does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagelake.settings import PROJECT_ROOT
from infra.k8s.instance import configurable_classes, load_values, render_instance
from infra.uv import find_uv

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
LOCAL_INSTANCE = PROJECT_ROOT / "infra" / "local" / "dagster.yaml"
CONFIG_MAP = PROJECT_ROOT / "infra" / "k8s" / "config.yaml"


def dockerfile_sync_flags() -> list[str]:
    found = re.search(r"uv sync ([^&\\]*)", DOCKERFILE)
    assert found, "the Dockerfile installs with uv sync"
    return found.group(1).split()


@pytest.fixture(scope="module")
def deploy_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("deploy") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    flags = [f for f in dockerfile_sync_flags() if f != "--compile-bytecode"]  # bytecode: not what is tested
    done = subprocess.run(
        [find_uv(), "sync", *flags, "--quiet", "--python", sys.executable],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return venv / "bin" / "python"


def run_in(python: Path, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", code],
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def named_classes() -> dict[str, tuple[str, str]]:
    rendered = configurable_classes(render_instance(load_values()))
    local = configurable_classes(yaml.safe_load(LOCAL_INSTANCE.read_text()))
    return {**{f"helm:{k}": v for k, v in rendered.items()}, **{f"local:{k}": v for k, v in local.items()}}


def test_the_rendered_instance_names_the_k8s_launcher_and_postgres_storage():
    classes = named_classes()
    assert classes["helm:run_launcher"] == ("dagster_k8s", "K8sRunLauncher")
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert classes[f"helm:{storage}"][0].startswith("dagster_postgres.")


def test_deploy_env_imports_every_class_the_instance_configs_name(deploy_python: Path):
    classes = named_classes()
    code = "import importlib, json\nfailed = {}\n"
    code += f"for section, (module, name) in {classes!r}.items():\n"
    code += "    try:\n        getattr(importlib.import_module(module), name)\n"
    code += "    except Exception as exc:\n        failed[section] = f'{module}.{name}: {exc!r}'\n"
    code += "print(json.dumps(failed))\n"
    done = run_in(deploy_python, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{}", f"the image could not load: {done.stdout}"


def test_deploy_env_holds_no_dev_tools(deploy_python: Path):
    done = run_in(
        deploy_python,
        "import importlib.util as u; print([m for m in ('pytest', 'moto', 'mypy', 'aws_cdk') if u.find_spec(m)])",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def production_environment() -> dict[str, str]:
    config_map = yaml.safe_load(CONFIG_MAP.read_text())["data"]
    secrets = {
        "IMAGELAKE_API_KEYS": "k8s-key:client",
        "REDSHIFT_PASSWORD": "from-the-secret",
    }  # imagelake-secrets
    return {**{k: str(v) for k, v in config_map.items()}, **secrets, "DAGSTER_HOME": "/tmp"}


def code_location_modules() -> list[str]:
    deployments = load_values()["dagster-user-deployments"]["deployments"]
    modules = []
    for deployment in deployments:
        args = deployment["dagsterApiGrpcArgs"]
        modules.append(args[args.index("--module-name") + 1])
    return modules


@pytest.mark.parametrize("module", code_location_modules())
def test_deploy_env_loads_each_code_location_as_its_grpc_server_does(deploy_python: Path, module: str):
    code = (
        f"import dagster as dg, {module} as m\n"
        "defs = m.defs if hasattr(m, 'defs') else None\n"
        "assert isinstance(defs, dg.Definitions), 'no Definitions named defs'\n"
        "print(len(list(defs.resolve_all_asset_keys())))\n"
    )
    done = run_in(deploy_python, code, production_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) > 0


def test_deploy_env_has_the_image_commands(deploy_python: Path):
    """The API's default command and the code servers' ``dagster api grpc``."""
    assert (deploy_python.parent / "dagster").exists()
    done = run_in(deploy_python, "import imagelake.api.__main__, uvicorn", production_environment())
    assert done.returncode == 0, done.stderr[-3000:]


def test_production_and_local_instances_limit_the_same_pools():
    """The maintenance pool keeps compaction and garbage collection apart in prod as it does locally."""
    local = yaml.safe_load(LOCAL_INSTANCE.read_text())["concurrency"]["pools"]
    prod = render_instance(load_values())["concurrency"]["pools"]
    assert prod == local == {"default_limit": 1}
