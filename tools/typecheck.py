"""Type-check the whole package with mypy, as it is installed: ``python tools/typecheck.py``.

pyproject.toml installs the folders ``diffs/``, ``probes/`` and ``viz/`` as ``postlens.diffs``,
``postlens.probes`` and ``postlens.viz`` (setuptools' package-dir); mypy reads folders, not
that mapping, so this lays the package out as it is imported (symbolic links in a temporary
folder) and checks it there, with the settings of ``[tool.mypy]`` in pyproject.toml. Errors
name the files of the repository. Exit code: mypy's.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parents[1]
#: Folder of the repository → where it sits inside the installed ``postlens`` package.
MAPPED = {"diffs": "diffs", "probes": "probes", "viz": "viz"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="postlens-typecheck-") as tmp:
        package = Path(tmp) / "postlens"
        package.mkdir()
        for item in (REPO / "postlens").iterdir():
            if item.name != "__pycache__":
                (package / item.name).symlink_to(item)
        for folder, name in MAPPED.items():
            (package / name).symlink_to(REPO / folder)
        config, here = str(REPO / "pyproject.toml"), os.getcwd()
        os.chdir(tmp)  # mypy finds the package from the working folder
        try:
            out, err, status = api.run(["--config-file", config, "-p", "postlens"])
        finally:
            os.chdir(here)
    sys.stdout.write(_repo_paths(out))
    sys.stderr.write(err)
    return status


def _repo_paths(text: str) -> str:
    """mypy's ``postlens/diffs/x.py`` as the repository's ``diffs/x.py``."""
    for folder, name in MAPPED.items():
        text = text.replace(f"postlens/{name}/", f"{folder}/")
    return text


if __name__ == "__main__":
    sys.exit(main())
