"""``make setup``'s first step (``make venv``) on the inputs a new machine or a careless edit gives it.

Each test runs the real Makefile in a copy of the checkout, with the real uv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from imagelake.settings import PROJECT_ROOT
from infra.uv import find_uv

MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
UV_VERSION = re.search(r"^UV_VERSION := (\S+)$", MAKEFILE, re.M).group(1)  # type: ignore[union-attr]
#: What a checkout holds that a copy for these tests must not: local state, caches, build output.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".cache",
    ".data",
    ".data-*",
    "target",
    "logs",
    "cdk.out",
    "node_modules",
    "*_cache",
    "__pycache__",
)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    shutil.copytree(PROJECT_ROOT, copy, ignore=NOT_COPIED)
    return copy


def make(checkout: Path, *args: str, env: dict[str, str] | None = None, net: bool = True, timeout: int = 300):
    command = ["make", "--no-print-directory", *args]
    if not net:
        command = ["unshare", "--net", *command]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("UV", "VIRTUAL_ENV", "MAKE"))}
    return subprocess.run(
        command, cwd=checkout, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def test_a_pyproject_edited_without_make_lock_stops_set_up_and_names_make_lock(checkout: Path):
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('  "packaging>=23",', '  "packaging>=23",\n  "six>=1.16",', 1)
    )
    done = make(checkout, "venv", f"UV={find_uv()}")
    assert done.returncode != 0
    assert "run 'make lock'" in done.stdout + done.stderr
    assert not (checkout / ".venv").exists(), "nothing is installed from a stale lock"


def old_pythons() -> list[Path]:
    """Interpreters below the lock's range that this machine has (pyenv keeps several)."""
    found = sorted(Path("/root/.pyenv/versions").glob("3.1[0]*/bin/python")) + sorted(
        Path("/root/.pyenv/versions").glob("3.[6-9]*/bin/python")
    )
    return found[:2]


@pytest.mark.skipif(not old_pythons(), reason="no Python older than 3.11 on this machine")
@pytest.mark.parametrize("python", old_pythons(), ids=lambda p: p.parent.parent.name)
def test_a_python_outside_the_lock_range_gets_a_clear_message(checkout: Path, python: Path):
    done = make(checkout, "venv", f"PYTHON={python}", f"UV={find_uv()}")
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "imagelake needs Python >=3.11,<3.14" in said
    assert python.parent.parent.name in said  # the version found
    assert "PYTHON=/path/to/python3.11" in said
    assert not (checkout / ".venv").exists()


def test_uv_missing_is_bootstrapped_at_the_pinned_version(checkout: Path):
    no_uv_path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "uv").exists()
    )
    done = make(checkout, ".cache/uv/bin/uv", env={"PATH": no_uv_path})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uv not found on PATH" in done.stdout
    version = subprocess.run(
        [str(checkout / ".cache/uv/bin/uv"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.split()[1] == UV_VERSION
    # and make setup then uses it: the Makefile's UV resolves to the bootstrapped binary
    shown = make(checkout, "-s", "--eval=print-uv: ; @echo $(UV)", "print-uv", env={"PATH": no_uv_path})
    assert shown.stdout.strip() == ".cache/uv/bin/uv"


def network_namespaces_work() -> bool:
    return (
        shutil.which("unshare") is not None and subprocess.run(["unshare", "--net", "true"]).returncode == 0
    )


@pytest.mark.skipif(not network_namespaces_work(), reason="cannot cut this process off the network")
def test_set_up_repeated_with_a_warm_cache_and_no_network_installs_from_the_cache(checkout: Path):
    """This suite's own ``make setup`` warmed uv's cache; a new checkout installs with no network."""
    done = make(checkout, "venv", f"UV={find_uv()}", net=False, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    python = checkout / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [str(python), "-c", "import imagelake, dagster, pyspark, dagster_k8s; print(imagelake.__file__)"],
        cwd=checkout.parent,  # not this checkout's folder, which python -c would put first on sys.path
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == str(checkout / "imagelake" / "__init__.py")
