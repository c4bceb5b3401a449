"""The README cannot drift from behaviour: every ```` ```console tested ```` block in README.md
is run here, command by command, and its output must match what the block shows.

A block is a terminal session: ``$ COMMAND`` lines (run with bash, stderr merged into stdout,
in one scratch folder per block, with ``acr-scan`` on PATH) each followed by the output they
print. In the shown output, ``…`` inside a line stands for any text (timestamps, temporary
paths), and a line that is only ``…`` for any number of lines. The scratch folder holds what
the README's examples name: ``alpine-310.tar.gz`` (Trivy's ``docker save`` of alpine 3.10.4),
``bundle.tar`` (go-containerregistry's two-image archive) from the shared test data, and the
demo advisory records at ``scanning/advisories/demo_records``. Only offline commands that run
in seconds are marked as tested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"
FILES = {
    "alpine-310.tar.gz": "images/trivy-fanal/alpine-310.tar.gz",
    "bundle.tar": "images/go-containerregistry/test_bundle.tar",
}
_BLOCK = re.compile(r"^```console tested\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    command: str
    expected: tuple[str, ...]


def readme_blocks(text: str) -> list[tuple[int, tuple[Step, ...]]]:
    """(line number, steps) of every tested block."""
    blocks = []
    for match in _BLOCK.finditer(text):
        steps: list[Step] = []
        command, expected = "", []
        for line in match.group(1).splitlines():
            if line.startswith("$ "):
                if command:
                    steps.append(Step(command=command, expected=tuple(expected)))
                command, expected = line[2:], []
            else:
                expected.append(line)
        if command:
            steps.append(Step(command=command, expected=tuple(expected)))
        blocks.append((text.count("\n", 0, match.start()) + 1, tuple(steps)))
    return blocks


def matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """Whether ``actual`` lines have the shape of ``expected`` (``…`` wildcards)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "…":
        return any(matches(rest, actual[skip:]) for skip in range(len(actual) + 1))
    if not actual:
        return False
    pattern = ".*".join(re.escape(part) for part in head.split("…"))
    return re.fullmatch(pattern, actual[0]) is not None and matches(rest, actual[1:])


def _scratch(folder: Path, testdata: Path) -> dict[str, str]:
    for name, shared in FILES.items():
        (folder / name).symlink_to(testdata / shared)
    records = folder / "scanning" / "advisories"
    records.mkdir(parents=True)
    (records / "demo_records").symlink_to(PROJECT_ROOT / "scanning" / "advisories" /
                                          "demo_records")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    # What `make` installs: a console script running scanning.cli:main (this checkout's).
    script = bin_dir / "acr-scan"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
                      "from scanning.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "COLUMNS": "100", "AzureWebJobsStorage": ""}


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_tested_blocks() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("steps", [steps for _, steps in BLOCKS],
                         ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_shown(steps: tuple[Step, ...], testdata: Path,
                                    tmp_path: Path) -> None:
    env = _scratch(tmp_path, testdata)
    for step in steps:
        result = subprocess.run(["bash", "-c", step.command], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=120, check=False)
        actual = result.stdout.rstrip("\n").splitlines() if result.stdout.strip() else []
        assert matches(step.expected, actual), (
            f"$ {step.command}\n--- README shows:\n" + "\n".join(step.expected)
            + "\n--- it prints:\n" + result.stdout)


@pytest.mark.parametrize(("expected", "actual", "result"), [
    (("a…c",), ["abbbc"], True),
    (("a", "…", "z"), ["a", "b", "c", "z"], True),
    (("a", "…"), ["a"], True),
    (("a…c",), ["abd"], False),
    (("a",), ["a", "b"], False),
])
def test_wildcards_match_as_documented(expected: tuple[str, ...], actual: list[str],
                                       result: bool) -> None:
    assert matches(expected, actual) is result
