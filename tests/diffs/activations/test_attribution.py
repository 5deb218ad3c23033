"""Attribution patching against exact patching, its gradient against finite differences, and the
sampled logit lens."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

import postlens as pl
from postlens import ModelPair
from postlens.data.batch import TokenBatch
from postlens.data.sequences import pad_batch, shared_logits
from postlens.diffs.activations.attribution import base_pass
from postlens.diffs.activations.compute import ActivationConfig, ActivationResult, activation_shifts
from postlens.diffs.divergence import kl_from_logits
from postlens.diffs.forks.compute import given_sequences
from postlens.errors import ConfigError
from postlens.hooks import resid_post

PROMPTS = ["Q: 12 + 34 = ?\n", "Q: 347 + 285 = ?\n", "Q: 9 * 8 = ?\n", "Q: 100 - 37 = ?\n"]
TEXTS = [("q: 12+34=?", " 46 done"), ("hello", " world, again"), ("abc", " def ghi")]


@pytest.fixture(scope="module")
def organism():
    fam = pl.load("organism:base", rl="organism:rl", sft="organism:sft")
    seqs = fam.sample(PROMPTS * 2, pl.SampleConfig(n=2, max_new_tokens=48, seed=1))
    return fam, seqs


@pytest.mark.parametrize("child", ["rl", "sft"])
def test_attribution_ranks_the_layers_as_exact_patching_on_the_organism(organism, child):
    """The organism has 4 layers: Spearman over 4 values is 1 only for the identical order."""
    fam, seqs = organism
    runs = {
        m: activation_shifts(fam[child], seqs[child], ActivationConfig(patching=m), progress=False)
        for m in ("exact", "attribution")
    }
    exact = [x.patch_recovered for x in runs["exact"].layers]
    approx = [x.patch_recovered for x in runs["attribution"].layers]
    assert spearmanr(exact, approx).statistic == pytest.approx(1.0)
    assert int(np.argmax(exact)) == int(np.argmax(approx))
    # Its values are an estimate (below the exact ones here: the linearised network
    # attenuates the patch): within 0.3 of the exact recovery at every layer.
    assert np.abs(np.array(exact) - np.array(approx)).max() < 0.3
    assert runs["attribution"].patching == "attribution"
    assert all(x.patch_first_order is not None for x in runs["attribution"].layers)


def _patched_kl(pair, batch, z_post, name, value):
    run = pair.run("base", batch, interventions={name: value})
    z = shared_logits(pair, [run.logits[batch.attention_mask.bool()]])[0]
    return float(kl_from_logits(z_post, z).sum())


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_the_first_order_term_is_the_directional_derivative(late_change, backend):
    """⟨∂M/∂h_ℓ, Δh_ℓ⟩ from one backward equals (M(h + εΔh) − M(h)) / ε for small ε."""
    pair = ModelPair.load(*late_change, backend=backend)
    ids, mask, _ = pad_batch(pair, given_sequences(pair, TEXTS))
    batch = TokenBatch(ids, mask, [])
    hooks = [resid_post(i) for i in range(pair.n_layers)]
    post, base = pair.run("post", batch, hooks), pair.run("base", batch, hooks)
    out = base_pass(pair, ids, mask, post, grad_batch_size=2)
    z_post = shared_logits(pair, [post.logits[mask.bool()]])[0]
    eps = 1e-3
    for i, name in enumerate(hooks):
        delta = post[name] - base[name]
        moved = _patched_kl(pair, batch, z_post, name, base[name] + eps * delta)
        numeric = (moved - out.output_kl) / eps
        assert out.attribution[i] == pytest.approx(numeric, rel=0.02, abs=1e-4)
    assert out.attribution[0] == pytest.approx(0.0, abs=1e-6)  # layer 0 is unchanged


def test_the_lens_reads_a_sample_of_positions_at_the_layers_asked(late_change):
    pair = ModelPair.load(*late_change)
    seqs = given_sequences(pair, TEXTS)
    cfg = ActivationConfig(lens_positions=2, lens_layers=(0, 2), patching="none")
    result = activation_shifts(pair, seqs, cfg, progress=False)
    assert result.lens_positions == 2 * len(seqs) < result.n_positions
    assert [x.logit_lens_kl is None for x in result.layers] == [False, True, False]
    assert all(x.patch_recovered is None for x in result.layers)
    again = activation_shifts(pair, seqs, cfg, progress=False)  # the draw is seeded
    assert again.layers[2].logit_lens_kl == result.layers[2].logit_lens_kl
    full = activation_shifts(pair, seqs, ActivationConfig(lens_positions=None), progress=False)
    assert full.lens_positions == full.n_positions
    data = json.loads(json.dumps(full.to_json()))
    assert ActivationResult.from_json(data) == full
    assert data["patching"] == "attribution" and data["summary"]["lens_positions"] > 0


def test_results_saved_before_attribution_still_load(late_change):
    pair = ModelPair.load(*late_change)
    result = activation_shifts(pair, given_sequences(pair, TEXTS), progress=False)
    data = json.loads(json.dumps(result.to_json()))
    for key in ("patching", "lens_positions"):
        del data[key]
    for layer in data["layers"]:
        del layer["patch_first_order"]
    old = ActivationResult.from_json(data)
    assert old.patching == "exact" and old.lens_positions == old.n_positions


def test_config_checks():
    assert ActivationConfig(patching=False).patching == "none"
    with pytest.raises(ConfigError):
        ActivationConfig(patching="approx")
    with pytest.raises(ConfigError):
        ActivationConfig(lens_positions=-1)
    assert ActivationConfig(lens_positions=0).lens_positions is None  # 0: every position
