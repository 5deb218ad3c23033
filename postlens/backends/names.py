"""The backends' names and the default one, in a module that imports nothing heavy.

The command line reads them for its ``--backend`` option at start-up, before (and often
without) loading torch; `postlens.pair` re-exports them.

Example:
    >>> DEFAULT_BACKEND in BACKENDS
    True
"""

from __future__ import annotations

from typing import Literal

BackendName = Literal["transformer_lens", "nnsight"]
BACKENDS: tuple[BackendName, ...] = ("transformer_lens", "nnsight")
#: The backend every function and command uses unless told otherwise (the one default).
DEFAULT_BACKEND: BackendName = "nnsight"
