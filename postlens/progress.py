"""When to show progress: on a terminal by default, never in a pipe or a log file.

Example:
    >>> show_progress(False), show_progress(True)
    (False, True)
"""

from __future__ import annotations

import sys


def show_progress(progress: bool | None) -> bool:
    """`progress` when given; otherwise whether stderr is a terminal."""
    if progress is not None:
        return progress
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
