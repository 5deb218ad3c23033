"""The Activation Difference Lens on planted tiny models: δ recovers the planted shift."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

import postlens as pl
from postlens.diffs.adl.compute import ADLConfig, activation_differences, adl_pair, lens_tokens
from postlens.pair import ModelPair
from postlens.testing import planted_shift_model, save_model

TEXTS = ["ab cd ef gh", "the dog runs", "q: 12+3 = 15"]


def test_delta_recovers_the_planted_shift_and_its_lens_tokens():
    base, post, tok, v = planted_shift_model(seed=0)
    pair = ModelPair.from_models(base, post, tok)
    deltas, norms, _ = activation_differences(pair, TEXTS, k=5)
    assert torch.allclose(deltas[0], torch.zeros_like(v), atol=1e-5)  # nothing before layer 1
    assert torch.nn.functional.cosine_similarity(deltas[1], v, dim=0) > 0.9999
    want = [t for t, _ in lens_tokens(pair.post, tok, v.unsqueeze(0), top=5)[0]]
    got = [t for t, _ in lens_tokens(pair.post, tok, deltas[1:2], top=5)[0]]
    assert got == want
    res = adl_pair(pair, TEXTS, ADLConfig(layer=1, alphas=(0.0, 1.0), top=5, sample=pl.SampleConfig(n=1, max_new_tokens=4)),
                   unrelated=["ab"])  # fmt: skip
    assert res.summary().peak_layer == 1 and res.top_tokens("post") == want
    assert res.rows[0].pass_rate is None and len(res.rows[1].samples) == 1
    back = pl.Result.from_json(res.to_json())
    assert back.summary() == res.summary() and back.rows == res.rows


def test_steering_the_base_with_delta_gives_the_child():
    base, post, tok, v = planted_shift_model(seed=0)
    pair = ModelPair.from_models(base, post, tok)
    cfg = ADLConfig(
        layer=1, alphas=(1.0,), sample=pl.SampleConfig(n=1, max_new_tokens=6, temperature=0.0)
    )
    res = adl_pair(pair, TEXTS, cfg, unrelated=["ab", "q: 1"])
    want = pair.generate("post", ["ab", "q: 1"], max_new_tokens=6, temperature=0.0)
    assert res.rows[0].samples == [s.completion for s in want]


def test_adl_command(tmp_path):
    base, post, tok, _ = planted_shift_model(seed=0)
    paths = [str(save_model(m, tok, tmp_path / n)) for m, n in ((base, "base"), (post, "child"))]
    out = CliRunner().invoke(pl_app(), ["adl", *paths, "--alpha", "0", "--alpha", "1",
                                        "--n-texts", "3", "--max-new-tokens", "4",
                                        "--json", str(tmp_path / "a.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    res = pl.load_result(tmp_path / "a.json")
    assert res["post"].summary().peak_layer == 1


def pl_app():
    from postlens.cli import app

    return app


def test_a_massive_position_is_left_out_by_position_not_by_token():
    """Position 0 of every text carries a huge residual (as a real LM's attention sink does,
    whatever token is there), and the child moves it: δ must be the mean over the other positions,
    computed here from plain transformers hidden states."""
    base, post, tok, _ = planted_shift_model(seed=0)
    gen = torch.Generator().manual_seed(3)
    sink, moved = (torch.randn(base.config.n_embd, generator=gen) for _ in range(2))
    with torch.no_grad():
        base.transformer.wpe.weight[0] += 300 * sink
        post.transformer.wpe.weight[0] += 300 * sink + 100 * moved
    pair = ModelPair.from_models(base, post, tok)
    texts = ["ab cd ef gh", "the dog runs", "hello there"]  # no BOS: position 0 is a letter
    assert tok.bos_token_id not in tok(texts[0]).input_ids[:1]
    deltas, _, massive = activation_differences(pair, texts, k=4)
    assert massive == [3, 0, 0, 0]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="right")
    with torch.no_grad():
        hb, hp = (m(**enc, output_hidden_states=True).hidden_states for m in (base, post))
    for layer in range(base.config.n_layer - 1):  # the last hidden state is after ln_f
        want = (hp[layer + 1][:, 1:4] - hb[layer + 1][:, 1:4]).mean((0, 1))
        assert torch.allclose(deltas[layer], want, atol=1e-4)
    kept, _, none = activation_differences(pair, texts, k=4, massive_ratio=None)
    assert none == [0, 0, 0, 0]
    cos = torch.nn.functional.cosine_similarity
    assert cos(kept[0], moved, dim=0) > 0.9 > cos(deltas[0], moved, dim=0)
