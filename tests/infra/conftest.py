"""One synthesized imagelake app shared by every infra test (synth takes seconds, not minutes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk.assertions import Template

from imagelake.settings import PROJECT_ROOT
from infra.aws.app import ImagelakeApp, build_app

EXAMPLE_CONTEXT_FILE = PROJECT_ROOT / "infra" / "aws" / "example-context.json"
#: Settings as a deployment without overrides sees them (no IMAGELAKE_* from the test's shell).
CLEAN_ENV: dict[str, str] = {}


def example_context(**overrides: str) -> dict[str, str]:
    """The context `make infra-synth` uses, with some values changed."""
    return {**json.loads(EXAMPLE_CONTEXT_FILE.read_text()), **overrides}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImagelakeApp, Path]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    built = build_app(example_context(), outdir, env=CLEAN_ENV)
    built.app.synth()
    return built, outdir


@pytest.fixture(scope="session")
def built(synthesized: tuple[ImagelakeApp, Path]) -> ImagelakeApp:
    return synthesized[0]


@pytest.fixture(scope="session")
def templates(built: ImagelakeApp) -> dict[str, Template]:
    """``Template`` per stack part: lake, events, catalog, processing, warehouse, registry, workloads."""
    return {stack.stack_name.rsplit("-", 1)[-1]: Template.from_stack(stack) for stack in built.stacks}


@pytest.fixture(scope="session")
def template_json(templates: dict[str, Template]) -> dict[str, dict[str, Any]]:
    return {part: template.to_json() for part, template in templates.items()}


@pytest.fixture(scope="session")
def context() -> Any:
    """``context(**overrides)``: the example context with some values changed."""
    return example_context
