"""Every docstring example in the package runs, on the shipped organism (nothing is skipped).

Modules are imported by their real names (``postlens.diffs.forks.compute``, not ``diffs.forks``), so the
examples see the same classes as users do; each module's examples run in a fresh temporary
folder, so examples that write files never touch the work tree.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

SKIP = {"postlens.__main__"}  # importing it runs the command line
#: diffs/, probes/ and viz/ are installed as postlens.* from folders of their own, so each
#: package's own path is walked.
PACKAGES = ("postlens", "postlens.diffs", "postlens.probes", "postlens.viz")
MODULES = sorted(
    {p for p in PACKAGES}
    | {
        m.name
        for p in PACKAGES
        for m in pkgutil.walk_packages(importlib.import_module(p).__path__, f"{p}.")
        if m.name not in SKIP and not m.name.startswith("postlens._")
    }
)


def test_every_subpackage_is_read():
    assert {
        "postlens.diffs.forks.compute",
        "postlens.probes.personas.directions",
        "postlens.viz.html",
    } <= set(MODULES)


def test_no_example_is_skipped():
    skipped = [name for name in MODULES if "doctest: +SKIP" in (importlib.import_module(name).__loader__.get_source(name) or "")]  # fmt: skip
    assert skipped == []


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # each test gets a copy of the module globals
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples failed in {name} (see the output above)"
