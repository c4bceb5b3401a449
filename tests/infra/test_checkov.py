"""checkov finds nothing in infra/ beyond the findings the README accepts, with reasons.

checkov cannot share the project virtualenv: it pins older packageurl-python and packaging than
requirements.txt does, so it lives in its own virtualenv (``.venv-checkov``, from
``infra/requirements-checkov.txt``). This test looks for it there, then at ``$CHECKOV``, then on
PATH, and skips with that instruction when none is found. checkov exits 0 when a file fails to
parse, so the test also requires zero parsing errors (test_bicep.py is the real syntax gate).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INFRA = PROJECT_ROOT / "infra"
CONFIG = INFRA / ".checkov.yaml"
README = PROJECT_ROOT / "README.md"
INSTALL_HINT = (
    "checkov not found: python3.11 -m venv .venv-checkov && "
    ".venv-checkov/bin/pip install -r infra/requirements-checkov.txt"
    " (or set CHECKOV=/path/to/checkov)"
)


def find_checkov() -> str | None:
    candidates = [
        os.environ.get("CHECKOV", ""),
        str(PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"),
        shutil.which("checkov") or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    checkov = find_checkov()
    if checkov is None:
        pytest.skip(INSTALL_HINT)
    completed = subprocess.run(
        [checkov, "--config-file", str(CONFIG), "--directory", str(INFRA), "--output", "json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(completed.stdout)
    # One framework gives one object; several give a list of them.
    reports = report if isinstance(report, list) else [report]
    (bicep,) = [item for item in reports if item.get("check_type") == "bicep"]
    return dict(bicep)


def test_checkov_parses_every_template(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert (summary["parsing_errors"], summary["passed"] > 0) == (0, True)


def test_checkov_reports_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['file_path']} {check['resource']}"
        for check in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []


def readme_deploy_section() -> str:
    readme = README.read_text(encoding="utf-8")
    start = readme.index("<!-- section:deploy -->")
    end = readme.index("<!-- /section:deploy -->")
    return readme[start:end]


def test_readme_lists_exactly_the_checks_the_config_skips() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    listed = set(re.findall(r"\bCKV2?_AZURE_\d+\b", readme_deploy_section()))
    assert sorted(listed) == sorted(config["skip-check"])
