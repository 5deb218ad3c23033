"""Interventions at named hooks during generation, against the backends' own traced forward
passes (an independent mechanism) and a hand-written transformers hook."""

from __future__ import annotations

import pytest
import torch

import postlens as pl
from postlens.errors import ConfigError
from postlens.hooks import HookNameError
from postlens.sampling.interventions import intervening

PROMPTS = ["ab + cd = ?\n", "q: 12+3\n"]
SITES = ["blocks.0.hook_resid_pre", "blocks.1.attn.hook_z", "blocks.1.hook_resid_mid",
         "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post", "ln_final.hook_normalized"]  # fmt: skip


@pytest.fixture(scope="module", params=["nnsight", "transformer_lens"])
def pair(tiny_dirs, request):
    folder = str(tiny_dirs["llama"])
    return pl.load(folder, post=folder, backend=request.param).pair


@pytest.mark.parametrize("name", SITES)
def test_a_forward_under_intervening_equals_the_traced_intervention(pair, name):
    batch = pair.tokenize(PROMPTS)
    probe = pair.run("base", batch, hooks=[name]).activations[name]
    v = torch.randn(probe.shape[-1], generator=torch.Generator().manual_seed(0))
    fn = {name: lambda h: h + 2.0 * v}
    with intervening(pair.base, fn):
        hooked = pair.run("base", batch).logits
    traced = pair.run("base", batch, interventions=fn).logits
    mask = batch.attention_mask.bool()
    torch.testing.assert_close(hooked[mask], traced[mask], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked[mask], pair.run("base", batch).logits[mask])


@pytest.mark.parametrize("name", ["blocks.1.hook_resid_post", "blocks.1.attn.hook_z"])
def test_generate_with_interventions_samples_as_the_first_step_and_a_cacheless_run_say(pair, name):
    """Greedy: the first sampled token is the argmax of the intervened forward pass, and the
    whole completion is what transformers' generate gives without a KV cache."""
    batch = pair.tokenize(PROMPTS[:1])
    probe = pair.run("base", batch, hooks=[name]).activations[name]
    v = torch.randn(probe.shape[-1], generator=torch.Generator().manual_seed(1))
    fn = {name: lambda h: h + 4.0 * v}
    got = pair.generate("base", PROMPTS[:1], max_new_tokens=6, temperature=0.0, interventions=fn)
    plain = pair.generate("base", PROMPTS[:1], max_new_tokens=6, temperature=0.0)
    first = pair.run("base", batch, interventions=fn).logits[0, -1].argmax()
    assert got[0].completion_ids[0] == int(first)
    model = pair.base.hf_model
    with intervening(model, fn), torch.no_grad():
        out = model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             max_new_tokens=6, do_sample=False, use_cache=False,
                             pad_token_id=pair.tokenizer.pad_token_id)  # fmt: skip
    n = len(got[0].completion_ids)
    assert out[0, batch.input_ids.shape[1] :][:n].tolist() == got[0].completion_ids
    assert got[0].completion_ids != plain[0].completion_ids or n == 0


def test_bad_interventions_are_one_clear_error(pair):
    bad = [({"blocks.0.hook_resid_post": torch.zeros(3)}, ConfigError, "needs a function"),
           ({"blocks.0.resid": lambda h: h}, HookNameError, "unknown hook")]  # fmt: skip
    for interventions, error, message in bad:
        with pytest.raises(error, match=message), intervening(pair.base, interventions):
            pass
    with pytest.raises(ConfigError, match="intervention returned"):
        pair.generate("base", PROMPTS[:1], max_new_tokens=2,
                      interventions={"blocks.0.hook_resid_post": lambda h: h[..., :2]})  # fmt: skip
    # Nothing stays installed after an error.
    batch = pair.tokenize(PROMPTS)
    torch.testing.assert_close(pair.run("base", batch).logits, pair.run("post", batch).logits)
