"""The Dockerfile, read structurally (no Docker engine here): what the image must contain and how it runs."""

from __future__ import annotations

import fnmatch
import re

from imagelake.settings import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
IGNORED = [
    line.strip()
    for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def instructions():
    """(instruction, argument) pairs with line continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)
        if not m.group(0).lstrip().startswith("#")
    ]


def stages():
    out, current = [], None
    for op, arg in instructions():
        if op == "FROM":
            current = {"from": arg, "ops": []}
            out.append(current)
        elif current is not None:
            current["ops"].append((op, arg))
    return out


def ignored(path):
    return any(
        fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/") for pattern in IGNORED
    )


def test_multi_stage_on_python_311_slim():
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE, re.M)
    froms = [s["from"] for s in stages()]
    assert len(froms) >= 2 and all(f.startswith("${PYTHON_IMAGE}") for f in froms)


def test_runtime_stage_runs_as_a_non_root_user():
    runtime = stages()[-1]
    users = [arg for op, arg in runtime["ops"] if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not any(op == "RUN" for op, arg in runtime["ops"][runtime["ops"].index(("USER", users[-1])) :])


def test_installs_exactly_the_lock_with_the_deploy_extra_and_parses_dbt():
    build = " ".join(arg for op, arg in stages()[0]["ops"] if op == "RUN")
    sync = re.search(r"uv sync ([^&]*)", build)
    assert sync, "the image must install from uv.lock"
    flags = sync.group(1).split()
    assert {"--locked", "--no-default-groups", "--compile-bytecode"} <= set(flags)
    assert flags[flags.index("--extra") + 1] == "deploy"
    assert "pip install ." not in build and "uv.lock" not in IGNORED
    assert "orchestration.dbt_prepare" in build and "dbt_project/target/manifest.json" in build
    assert "IMAGELAKE_DBT_TARGET=prod" in build


def test_the_code_location_and_api_files_reach_the_image():
    for needed in (
        "workspace.yaml",
        "pyproject.toml",
        "dbt_project/dbt_project.yml",
        "dbt_project/profiles.yml",
        "imagelake/api/application.py",
        "orchestration/definitions.py",
        "orchestration/warehouse_definitions.py",
        "assets/__init__.py",
    ):
        assert (PROJECT_ROOT / needed).exists(), needed
        assert not ignored(needed), f".dockerignore drops {needed}"
    for local in (".venv", ".data", ".git", "infra/aws/cdk.out", "dbt_project/target"):
        assert ignored(local), f".dockerignore lets {local} into the image"
    runtime_copies = [arg for op, arg in stages()[-1]["ops"] if op == "COPY"]
    assert any("/opt/venv" in c for c in runtime_copies)
    assert any(c.endswith("/src /opt/imagelake") for c in runtime_copies)


def test_default_command_and_ports_match_the_manifests():
    runtime = dict(stages()[-1]["ops"])
    assert runtime["CMD"] == '["python", "-m", "imagelake.api"]'
    assert set(runtime["EXPOSE"].split()) == {"8000", "3030"}
    assert "IMAGELAKE_API_HOST=0.0.0.0" in DOCKERFILE


def test_the_image_installs_with_the_uv_the_makefile_pins():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    in_image = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE, re.M)
    assert pinned and in_image and pinned.group(1) == in_image.group(1)
