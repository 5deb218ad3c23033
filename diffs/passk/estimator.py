"""The unbiased pass@k estimator (Chen et al., 2021; used by arXiv 2504.13837).

pass@k = 1 − C(n−c, k)/C(n, k) from n samples of which c are correct. On its own module so that
the curves (`postlens.diffs.passk.compute`) and their bootstrap (`postlens.diffs.passk.bootstrap`) share
it without importing each other.
"""

from __future__ import annotations

import math

from postlens.errors import ConfigError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 − C(n−c, k) / C(n, k).

    Computed as a product so it stays exact for large n.

    Example:
        >>> round(pass_at_k(10, 3, 1), 3)
        0.3
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ConfigError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n."""
    return [2**i for i in range(int(math.log2(n)) + 1)]
