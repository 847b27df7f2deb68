"""The imagelake CDK app: ``python infra/aws/app.py --context-file ctx.json -c key=value`` writes infra/aws/cdk.out.

No CDK CLI is needed to synthesize: this script is the app. ``cdk deploy``
runs the same script (``cdk.json``) and passes its ``-c`` values through the
environment. A missing or malformed context value, or a retention below one
day, stops synth with a message naming the value (exit status 2).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Run as a script (python infra/aws/app.py, or cdk from infra/aws): make the repo importable.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# jsii warns loudly on Node 20 (this machine's); the warning is not about the app.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402

from infra.aws.config import DeployConfig, InfraConfigError  # noqa: E402
from infra.aws.stacks.catalog_stack import CatalogStack  # noqa: E402
from infra.aws.stacks.events_stack import EventsStack  # noqa: E402
from infra.aws.stacks.lake_stack import LakeStack  # noqa: E402
from infra.aws.stacks.processing_stack import ProcessingStack  # noqa: E402
from infra.aws.stacks.registry_stack import RegistryStack  # noqa: E402
from infra.aws.stacks.warehouse_stack import WarehouseStack  # noqa: E402
from infra.aws.stacks.workloads_stack import WorkloadsStack  # noqa: E402

DEFAULT_OUTDIR = Path(__file__).resolve().parent / "cdk.out"


@dataclass(frozen=True)
class ImagelakeApp:
    """The app and its stacks, for tests that assert on each template."""

    app: cdk.App
    config: DeployConfig
    lake: LakeStack
    events: EventsStack
    catalog: CatalogStack
    processing: ProcessingStack
    warehouse: WarehouseStack
    registry: RegistryStack
    workloads: WorkloadsStack

    @property
    def stacks(self) -> list[cdk.Stack]:
        return [
            self.lake,
            self.events,
            self.catalog,
            self.processing,
            self.warehouse,
            self.registry,
            self.workloads,
        ]


def build_app(
    context: Mapping[str, str] | None = None,
    outdir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ImagelakeApp:
    """Build every stack; ``context`` adds to what the CDK CLI passes, ``env`` replaces os.environ for settings."""
    app = cdk.App(context=dict(context or {}), outdir=str(outdir or DEFAULT_OUTDIR))
    config = DeployConfig.from_context(app.node.try_get_context, env)
    aws_env = cdk.Environment(account=config.account, region=config.region)

    def stack_id(part: str) -> str:
        return f"imagelake-{config.env_name}-{part}"

    common = {"config": config, "env": aws_env}
    lake = LakeStack(app, stack_id("lake"), description="imagelake: the S3 lake and ops buckets", **common)
    events = EventsStack(
        app, stack_id("events"), description="imagelake: MSK Serverless and the uploads topic", **common
    )
    catalog = CatalogStack(
        app, stack_id("catalog"), description="imagelake: the DynamoDB image catalog", **common
    )
    processing = ProcessingStack(
        app,
        stack_id("processing"),
        description="imagelake: EMR Serverless Spark",
        lake_key=lake.key,
        **common,
    )
    warehouse = WarehouseStack(
        app,
        stack_id("warehouse"),
        description="imagelake: Redshift Serverless and Glue",
        lake_key=lake.key,
        **common,
    )
    registry = RegistryStack(
        app, stack_id("registry"), description="imagelake: the container registry", **common
    )
    workloads = WorkloadsStack(
        app,
        stack_id("workloads"),
        description="imagelake: roles for the upload API and Dagster pods",
        lake_key=lake.key,
        emr_application_arn=processing.application_arn,
        emr_job_role=processing.job_role,
        **common,
    )
    for stack in (lake, events, catalog, processing, warehouse, registry, workloads):
        cdk.Tags.of(stack).add("project", "imagelake")
        cdk.Tags.of(stack).add("imagelake:env", config.env_name)
    return ImagelakeApp(app, config, lake, events, catalog, processing, warehouse, registry, workloads)


def read_context_file(path: Path) -> dict[str, str]:
    """A JSON object of context values (infra/aws/example-context.json shows every required key)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InfraConfigError(f"cannot read context file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InfraConfigError(f"context file {path} must hold a JSON object of key: value")
    return {str(k): str(v) for k, v in data.items()}


def parse_args(argv: Sequence[str]) -> tuple[dict[str, str], Path | None]:
    """``--context-file f.json``, then ``-c key=value`` (repeatable, like the CDK CLI; wins), ``-o outdir``."""
    context: dict[str, str] = {}
    outdir: Path | None = None
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--context-file" and args:
            context = {**read_context_file(Path(args.pop(0))), **context}
        elif flag in ("-c", "--context") and args:
            key, sep, value = args.pop(0).partition("=")
            if not sep or not key:
                raise InfraConfigError(f"context values look like -c key=value, got {key!r}")
            context[key.strip()] = value.strip()
        elif flag in ("-o", "--output") and args:
            outdir = Path(args.pop(0))
        else:
            raise InfraConfigError(
                f"unknown argument {flag!r}: use --context-file f.json, -c key=value, -o outdir"
            )
    return context, outdir


def main(argv: Sequence[str] | None = None) -> int:
    try:
        context, outdir = parse_args(sys.argv[1:] if argv is None else argv)
        built = build_app(context, outdir)
    except InfraConfigError as exc:
        print(f"imagelake infra: synth failed: {exc}", file=sys.stderr)
        return 2
    assembly = built.app.synth()
    print(f"synthesized {len(built.stacks)} stacks into {assembly.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
