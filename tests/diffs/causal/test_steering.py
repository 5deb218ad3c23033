"""Steering and weight extrapolation against plain transformers, on planted tiny models."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

import postlens as pl
from postlens.data.prompts import PromptRecord
from postlens.diffs.causal.extrapolate import (
    ExtrapolateConfig,
    plain_parameters,
    set_extrapolated,
    working_model,
)
from postlens.pair import ModelPair
from postlens.sampling.generation import sample_completions
from postlens.sampling.steering import decoder_layer, steering
from postlens.testing import planted_shift_model, save_model, tiny_model

PROMPTS = ["ab + cd = ?\n", "q: 12+3\n"]


def _hand_hook(vector, alpha, start=None):
    """A plain transformers forward hook adding alpha * vector (from column `start` on)."""
    state = {"offset": 0}

    def pre(module, args, kwargs):
        cache = kwargs.get("past_key_values")
        state["offset"] = cache.get_seq_length(module.self_attn.layer_idx) if cache else 0

    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        add = alpha * vector.to(h.dtype)
        if start is not None:
            cols = torch.arange(state["offset"], state["offset"] + h.shape[1])
            add = (cols >= start).to(h.dtype).unsqueeze(-1) * add
        new = h + add
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return pre, hook


def test_planted_direction_gives_the_child_exactly():
    base, post, tok, v = planted_shift_model(seed=0)
    pair = ModelPair.from_models(base, post, tok)
    batch = pair.tokenize(PROMPTS)
    with steering(pair.base, v, layer=1, alpha=1.0):
        steered = pair.run("base", batch).logits
        got = sample_completions(pair.base, tok, PROMPTS, max_new_tokens=12, temperature=0.0)
    want = sample_completions(pair.post, tok, PROMPTS, max_new_tokens=12, temperature=0.0)
    torch.testing.assert_close(steered, pair.run("post", batch).logits, atol=1e-5, rtol=1e-5)
    assert [s.completion_ids for s in got] == [s.completion_ids for s in want]


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_steering_matches_a_plain_forward_hook(backend, tiny_dirs):
    folder = str(tiny_dirs["llama"])
    pair = pl.load(folder, post=folder, backend=backend).pair
    plain = AutoModelForCausalLM.from_pretrained(folder).eval()
    v = torch.randn(plain.config.hidden_size, generator=torch.Generator().manual_seed(1))
    pre, hook = _hand_hook(v, 3.0)
    handles = [plain.model.layers[1].register_forward_pre_hook(pre, with_kwargs=True),
               plain.model.layers[1].register_forward_hook(hook)]  # fmt: skip
    try:
        want = sample_completions(
            pl.ModelPair.from_models(plain, plain, pair.tokenizer).base,
            pair.tokenizer,
            PROMPTS,
            max_new_tokens=10,
            temperature=0.0,
        )
        batch = pair.tokenize(PROMPTS)
        want_logits = plain(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    finally:
        for h in handles:
            h.remove()
    with steering(pair.base, v, layer=1, alpha=3.0):
        got = sample_completions(pair.base, pair.tokenizer, PROMPTS, max_new_tokens=10,
                                 temperature=0.0)  # fmt: skip
        logits = pair.run("base", batch).logits
    mask = batch.attention_mask.bool()
    torch.testing.assert_close(logits[mask], want_logits[mask].detach(), atol=1e-4, rtol=1e-4)
    assert [s.completion_ids for s in got] == [s.completion_ids for s in want]
    # The same shift through the backend's own interventions.
    via = pair.run("base", batch, interventions={"blocks.1.hook_resid_post": lambda h: h + 3.0 * v})
    torch.testing.assert_close(via.logits[mask], logits[mask], atol=1e-4, rtol=1e-4)


def test_generated_positions_only_and_alpha_zero(tiny_dirs):
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_dirs["llama"])).eval()
    _, tok = tiny_model()
    ids = torch.tensor([tok("abc + de").input_ids])
    v = torch.ones(plain.config.hidden_size)
    base_logits = plain(input_ids=ids).logits
    with steering(plain, v, layer=0, alpha=0.0):
        assert torch.equal(plain(input_ids=ids).logits, base_logits)
    with steering(plain, v, layer=0, alpha=2.0, where="generated") as state:
        state.fixed_width = 4  # columns 0-2 are prompt, column 3 is the prompt's last
        out = plain(input_ids=ids).logits
    torch.testing.assert_close(out[:, :3], base_logits[:, :3])
    assert not torch.allclose(out[:, 3:], base_logits[:, 3:])
    pre, hook = _hand_hook(v, 2.0, start=3)
    handles = [plain.model.layers[0].register_forward_pre_hook(pre, with_kwargs=True),
               plain.model.layers[0].register_forward_hook(hook)]  # fmt: skip
    want = plain(input_ids=ids).logits
    for h in handles:
        h.remove()
    torch.testing.assert_close(out, want)


def test_ablation_removes_the_direction(tiny_dirs):
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_dirs["llama"])).eval()
    v = torch.randn(plain.config.hidden_size, generator=torch.Generator().manual_seed(2))
    seen = {}
    with steering(plain, v, layer=1, ablate=True):
        handle = decoder_layer(plain, 1).register_forward_hook(
            lambda m, a, out: seen.setdefault("h", out[0] if isinstance(out, tuple) else out)
        )
        plain(input_ids=torch.tensor([[5, 6, 7, 8]]))
        handle.remove()
    assert (seen["h"] @ (v / v.norm())).abs().max() < 1e-4


@torch.no_grad()
def test_extrapolation_endpoints_and_midpoint(tmp_path):
    a, tok = tiny_model(seed=0)
    b, _ = tiny_model(seed=1)
    ids = torch.tensor([tok("12 + 34 = ?").input_ids])
    model = working_model(a)
    assert torch.equal(
        set_extrapolated(model, a, b, 0.0)(input_ids=ids).logits, a(input_ids=ids).logits
    )
    assert torch.equal(
        set_extrapolated(model, a, b, 1.0)(input_ids=ids).logits, b(input_ids=ids).logits
    )
    mid = AutoModelForCausalLM.from_config(a.config).eval()
    mid.load_state_dict({k: (v + b.state_dict()[k]) / 2 for k, v in a.state_dict().items()})
    got = set_extrapolated(model, a, b, 0.5)(input_ids=ids).logits
    torch.testing.assert_close(got, mid(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    # Past the child: the update doubled.
    twice = AutoModelForCausalLM.from_config(a.config).eval()
    twice.load_state_dict({k: 2 * b.state_dict()[k] - v for k, v in a.state_dict().items()})
    got = set_extrapolated(model, a, b, 2.0)(input_ids=ids).logits
    torch.testing.assert_close(got, twice(input_ids=ids).logits, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_extrapolation_endpoints_are_exact_in_bfloat16(tmp_path):
    tok = tiny_model(seed=0)[1]
    a, b = (
        AutoModelForCausalLM.from_pretrained(
            save_model(tiny_model(seed=seed)[0], tok, tmp_path / str(seed)), dtype=torch.bfloat16
        ).eval()
        for seed in (0, 1)
    )
    ids = torch.tensor([tok("12 + 34 = ? a: 46").input_ids])
    model = working_model(a)
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32  # not rounded to bfloat16
    for alpha, end in ((0.0, a), (1.0, b)):
        got = set_extrapolated(model, a, b, alpha)(input_ids=ids).logits
        assert torch.equal(got, end(input_ids=ids).logits), alpha


def test_bridged_models_name_their_tensors_plainly(tiny_dirs):
    folder = str(tiny_dirs["llama"])
    bridged = pl.load(folder, post=folder, backend="transformer_lens").base.hf_model
    plain = AutoModelForCausalLM.from_pretrained(folder)
    assert set(dict(plain.named_parameters())) <= set(plain_parameters(bridged))


def test_family_extrapolation_between_children_is_exact_at_the_ends(tmp_path):
    a, tok = tiny_model(seed=0)
    b, _ = tiny_model(seed=1)
    paths = [save_model(m, tok, tmp_path / n) for m, n in ((a, "a"), (b, "b"), (b, "c"))]
    fam = pl.load(str(paths[0]), sft=str(paths[1]), rl=str(paths[2]))
    cfg = ExtrapolateConfig(
        alphas=(0.0, 1.0), start="sft", sample=pl.SampleConfig(n=2, limit=1, max_new_tokens=6)
    )
    res = fam.extrapolate([PromptRecord("ab\n", answer="1")], dataclasses.replace(cfg, child="rl"))
    assert res.rows[0].kl["sft"] == 0.0 and res.rows[1].kl["rl"] == 0.0
    assert pl.Result.from_json(res.to_json()).summary() == res.summary()


@pytest.mark.parametrize("spec", [{"where": "generated"}, {"steps": (0, 2)}, {"where": "all"}])
def test_generation_without_a_cache_steers_the_columns_the_cached_run_steers(tiny_dirs, spec):
    """Without a KV cache every step re-runs the whole sequence; the prompt's width must still
    come from the generate call, not from each step's longer input."""
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_dirs["llama"])).eval()
    _, tok = tiny_model()
    ids = torch.tensor([tok("abc + de").input_ids])
    v = torch.randn(plain.config.hidden_size, generator=torch.Generator().manual_seed(3))
    runs = {}
    for cache in (True, False):
        with steering(plain, v, layer=0, alpha=20.0, **spec), torch.no_grad():
            out = plain.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=6, do_sample=False, use_cache=cache,
                                 output_scores=True, return_dict_in_generate=True,
                                 pad_token_id=tok.pad_token_id)  # fmt: skip
        runs[cache] = out
    assert runs[True].sequences.tolist() == runs[False].sequences.tolist()
    for cached, uncached in zip(runs[True].scores, runs[False].scores, strict=True):
        torch.testing.assert_close(cached, uncached, atol=2e-5, rtol=1e-5)
    with torch.no_grad():
        unsteered = plain.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                   max_new_tokens=6, do_sample=False, output_scores=True,
                                   return_dict_in_generate=True, pad_token_id=tok.pad_token_id)  # fmt: skip
    assert not torch.allclose(unsteered.scores[-1], runs[True].scores[-1])
