"""cfn-lint over every synthesized template: clean, and able to fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def cfn_lint(*paths):
    """The cfn-lint command installed beside this interpreter (the [infra] extra), as CI would run it."""
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_synthesized_templates_are_cfn_lint_clean(synthesized):
    _, outdir = synthesized
    templates = sorted(outdir.glob("*.template.json"))
    assert len(templates) == 7
    result = cfn_lint(*templates)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_flags_a_broken_template(synthesized, tmp_path):
    _, outdir = synthesized
    template = json.loads((outdir / "imagelake-prod-catalog.template.json").read_text())
    table = next(r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table")
    table["Properties"]["BillingMode"] = "SOMETIMES"
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(template))
    result = cfn_lint(broken)
    assert result.returncode != 0 and "E3030" in result.stdout and "SOMETIMES" in result.stdout
