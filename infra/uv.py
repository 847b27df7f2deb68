"""The uv that ``make`` uses, for the Python that needs it (``make spark-package``, the build tests)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from imagelake.settings import PROJECT_ROOT

#: Where ``make setup`` bootstraps uv when none is on PATH (Makefile, UV_HOME).
BOOTSTRAPPED = PROJECT_ROOT / ".cache" / "uv" / "bin" / "uv"


def find_uv() -> str:
    """``UV`` as make passes it, else a uv on PATH, else the one make setup bootstrapped."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(BOOTSTRAPPED)):
        if candidate and (shutil.which(candidate) or Path(candidate).is_file()):
            return candidate
    raise SystemExit("uv not found: run `make setup`, which installs it into .cache/uv")
