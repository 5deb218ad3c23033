"""The C kernel's per-chunk sums against the torch ops and float64 (postlens.diffs.weights.stats)."""

from __future__ import annotations

import pytest
import torch

from postlens.diffs.weights.stats import (
    CHUNK,
    Workspace,
    cross_sums,
    flat_chunks,
    fused_chunk_sums,
    pair_sums,
)

pytestmark = pytest.mark.skipif(
    fused_chunk_sums([torch.zeros(1), torch.zeros(1)]) is None,
    reason="the optional C kernels are not built",
)
DTYPES = [torch.float32, torch.bfloat16]


def _operands(dtypes: list[torch.dtype], n: int = 2 * CHUNK + 1234) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(len(dtypes))
    base = torch.randn(n, generator=g)
    out = [base]
    for _ in dtypes[1:]:
        post = base.clone()
        moved = torch.rand(n, generator=g) < 0.25
        post[moved] += 1e-2 * torch.randn(int(moved.sum()), generator=g)
        out.append(post)
    return [t.to(d) for t, d in zip(out, dtypes, strict=True)]


@pytest.mark.parametrize("db", DTYPES)
@pytest.mark.parametrize("dp", DTYPES)
def test_pair_sums_match_the_torch_ops_and_float64(db, dp):
    b, p = _operands([db, dp])
    fused = fused_chunk_sums([b, p], atol=1e-3)
    ws = Workspace()
    chunks = list(zip(flat_chunks(b), flat_chunks(p), strict=True))
    eager = torch.stack([pair_sums(x, y, 1e-3, ws) for x, y in chunks])
    assert fused.shape == (3, 6)
    expected = []
    for x, y in chunks:
        x64, d = x.double(), (y.float() - x.float()).double()  # Δ is taken in float32
        sums = [
            d @ d,
            x64 @ x64,
            d.abs().sum(),
            d.abs().max(),
            (d != 0).sum(),
            (d.abs() > 1e-3).sum(),
        ]
        expected.append(torch.stack(sums).double())
    # Chunk sums in float32: the kernel folds blocks of 4096 into float64, torch sums the whole
    # chunk in float32, so the kernel is the closer of the two.
    torch.testing.assert_close(fused, torch.stack(expected), rtol=1e-6, atol=0)
    torch.testing.assert_close(eager, torch.stack(expected), rtol=3e-5, atol=0)


@pytest.mark.parametrize(
    "dtypes", [[torch.float32] * 3, [torch.bfloat16, torch.float32, torch.bfloat16]]
)
def test_cross_sums_match_the_torch_ops(dtypes):
    b, p, o = _operands(dtypes)
    fused = fused_chunk_sums([b, p, o])
    ws = Workspace()
    chunks = zip(flat_chunks(b), flat_chunks(p), flat_chunks(o), strict=True)
    eager = torch.stack([cross_sums(*c, ws) for c in chunks])
    torch.testing.assert_close(fused, eager, rtol=3e-5, atol=0)


def test_a_nan_makes_only_its_chunk_non_finite():
    b, p = _operands([torch.float32, torch.float32])
    p[CHUNK + 5] = float("nan")
    b[-1] = float("inf")
    finite = torch.isfinite(fused_chunk_sums([b, p])).all(1)
    assert finite.tolist() == [True, False, False]


def test_unsupported_dtypes_and_empty_tensors():
    assert fused_chunk_sums([torch.zeros(3, dtype=torch.float16)] * 2) is None
    assert fused_chunk_sums([torch.zeros(0), torch.zeros(0)]).shape == (0, 6)
    with pytest.raises(ValueError, match="differ in size"):
        fused_chunk_sums([torch.zeros(3), torch.zeros(4)])
