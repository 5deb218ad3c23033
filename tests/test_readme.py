"""The README's test command is exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _command_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip().startswith("pip install")}


def test_ci_runs_the_readme_test_command():
    readme = _command_lines((REPO / "README.md").read_text())
    ci = _command_lines((REPO / ".ci" / "run").read_text())
    assert len(ci) == 1, ".ci/run must run exactly one command"
    assert ci <= readme, f"README does not show the command CI runs: {ci}"
