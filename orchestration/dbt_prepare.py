"""Parse the dbt project so the code location can load its manifest (``make setup``).

``dagster dev`` re-parses on its own (``prepare_if_dev``); CI, tests and
deployments run this once instead. With arguments it runs that dbt command
instead, with the same settings (``make docs``: ``docs generate``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagelake.settings import PROJECT_ROOT, get_settings


def main(args: list[str] | None = None) -> int:
    settings = get_settings()
    env = {**os.environ, **settings.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    project = PROJECT_ROOT / "dbt_project"
    dbt = Path(sys.executable).with_name("dbt")
    command = args or ["parse", "--quiet"]
    if settings.dbt_target == "local":
        settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(dbt), *command, "--project-dir", str(project), "--profiles-dir", str(project)]
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
