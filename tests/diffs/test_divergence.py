"""The fast per-position statistics against float64 textbook formulas."""

from __future__ import annotations

import pytest
import torch

from postlens.diffs import divergence as d


def _reference(zb: torch.Tensor, zp: torch.Tensor) -> dict[str, torch.Tensor]:
    lb, lp = torch.log_softmax(zb.double(), -1), torch.log_softmax(zp.double(), -1)
    pb, pp = lb.exp(), lp.exp()
    m = 0.5 * (pb + pp)
    arg_b, arg_p = lb.argmax(-1, keepdim=True), lp.argmax(-1, keepdim=True)
    return {
        "entropy_base": -(pb * lb).sum(-1),
        "entropy_post": -(pp * lp).sum(-1),
        "kl": (pp * (lp - lb)).sum(-1),
        "js": 0.5 * (pb * (lb - m.log())).sum(-1) + 0.5 * (pp * (lp - m.log())).sum(-1),
        "argmax_base": arg_b.squeeze(-1),
        "argmax_post": arg_p.squeeze(-1),
        "post_rank_in_base": (lb > lb.gather(-1, arg_p)).sum(-1) + 1,
        "p_base_of_post": pb.gather(-1, arg_p).squeeze(-1),
        "p_post_of_base": pp.gather(-1, arg_b).squeeze(-1),
        "top_base_ids": lb.topk(5, -1).indices,
        "top_post_p": pp.topk(5, -1).values,
    }


@pytest.fixture(scope="module")
def logits():
    g = torch.Generator().manual_seed(0)
    # 20_000 is not a multiple of the top-k block: the ragged tail is searched too.
    zb = torch.randn(70, 20_000, generator=g) * 4
    zp = zb + torch.randn(70, 20_000, generator=g)
    zp[3] = zb[3]  # one identical position
    zb[5, 19_999] = 100.0  # an argmax inside the tail
    zp[6] = zb[6] * 30  # a near one-hot distribution
    return zb, zp


@pytest.mark.parametrize("chunk", [None, 16, 64])
def test_matches_float64_reference(logits, chunk):
    zb, zp = logits
    got, ref = d.position_stats(zb, zp, chunk=chunk), _reference(zb, zp)
    for name, want in ref.items():
        value = getattr(got, name)
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value.double(), want, atol=2e-6, rtol=1e-5)
        else:
            assert torch.equal(value, want), name
    assert got.kl[3] == 0 and got.post_rank_in_base[3] == 1 and got.argmax_base[5] == 19_999


def test_selected_rows_and_bfloat16(logits):
    zb, zp = logits
    rows = torch.tensor([1, 2, 3, 9, 40, 41])
    got = d.position_stats(zb, zp, rows=rows, chunk=4)
    torch.testing.assert_close(got.kl, d.position_stats(zb[rows], zp[rows]).kl)
    half = d.position_stats(zb.bfloat16(), zp.bfloat16())
    assert half.kl.dtype == torch.float32  # reductions never run in half precision


def test_fused_kernel_matches_eager(logits):
    zb, zp = logits
    eager, fused = d.position_stats(zb, zp), d.position_stats(zb, zp, compiled=True)
    for name in d.stats_fields():
        torch.testing.assert_close(getattr(fused, name), getattr(eager, name), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("compiled", [False, True])
def test_kl_from_logits_matches_float64(logits, compiled):
    zb, zp = logits
    want = d.kl_div(torch.log_softmax(zp.double(), -1), torch.log_softmax(zb.double(), -1))
    got = d.kl_from_logits(zp, zb, compiled=compiled)
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5)
    assert got[3] == 0  # identical logits: exactly zero
    # bfloat16 logits are reduced in float32; a ragged last block is padded, then cut.
    half = d.kl_from_logits(zp[:7].bfloat16(), zb[:7].bfloat16(), chunk=4, compiled=compiled)
    ref = d.kl_div(
        torch.log_softmax(zp[:7].bfloat16().double(), -1),
        torch.log_softmax(zb[:7].bfloat16().double(), -1),
    )
    assert half.dtype == torch.float32 and half.shape == (7,)
    torch.testing.assert_close(half.double(), ref, atol=2e-5, rtol=1e-4)


def test_empty_and_mismatched():
    z = torch.zeros(0, 10)
    assert d.position_stats(z, z).kl.shape == (0,)
    with pytest.raises(ValueError, match="shapes differ"):
        d.position_stats(torch.zeros(2, 10), torch.zeros(2, 11))
