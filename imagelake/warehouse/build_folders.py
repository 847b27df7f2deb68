"""The folders dbt writes per build, and how long a failed build's folder is kept.

Each build writes its compiled SQL, artifacts and dbt.log to a folder of its
own (``<op>-<ids>`` in dbt's target folder), and the sensor refreshes all
day: kept, the folders would fill the disk. A successful build removes its
own folder; one that failed or was stopped keeps it for a look at its dbt.log,
for ``BUILD_FOLDER_KEEP``.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: How long the dbt folder of a failed or stopped build is kept for a look at its dbt.log.
BUILD_FOLDER_KEEP = timedelta(days=1)


def prune_build_folders(target: Path, op_name: str, now: datetime | None = None) -> list[str]:
    """Remove the dbt folders of this op's builds that failed or were stopped more than a day ago."""
    cutoff = (now or datetime.now(UTC)) - BUILD_FOLDER_KEEP
    removed = []
    for folder in sorted(target.glob(f"{op_name}-*")):
        if folder.is_dir() and datetime.fromtimestamp(folder.stat().st_mtime, UTC) < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
