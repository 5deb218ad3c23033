"""When to show progress: on a terminal by default, never in a pipe or a log file.

``postlens --progress COMMAND`` (or ``POSTLENS_PROGRESS=1``) shows it anywhere.

Example:
    >>> show_progress(False), show_progress(True)
    (False, True)
"""

from __future__ import annotations

import os
import sys

PROGRESS_ENV = "POSTLENS_PROGRESS"


def show_progress(progress: bool | None) -> bool:
    """`progress` when given; otherwise ``POSTLENS_PROGRESS=1`` or whether stderr is a terminal."""
    if progress is not None:
        return progress
    if os.environ.get(PROGRESS_ENV) == "1":
        return True
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
