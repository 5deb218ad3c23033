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


NOT_RUN = "<!-- not run:"


def _python_blocks(text: str) -> list[str]:
    """The README's ```python blocks, in order, less those marked ``<!-- not run: why -->``."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            marked = i > 0 and lines[i - 1].startswith(NOT_RUN)
            end = lines.index("```", i + 1)
            if not marked:
                blocks.append("\n".join(lines[i + 1 : end]))
            i = end
        i += 1
    return blocks


def test_readme_python_examples_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    blocks = _python_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 3
    for block in blocks:  # one namespace: later blocks build on earlier ones, as in a notebook
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "report.html").is_file()
