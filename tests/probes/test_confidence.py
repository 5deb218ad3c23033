"""Confidence probes: planted signal, held-out metrics, save/load with provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from postlens import ModelPair
from postlens.errors import PostlensError
from postlens.probes.activations import resid_post
from postlens.probes.confidence import ConfidenceProbe, evaluate, fit_layer_probes
from postlens.probes.provenance import Provenance
from postlens.probes.trajectory import Trace, TrajectoryConfig, TrajectoryResult
from postlens.testing import tiny_model


def test_ridge_probe_recovers_a_planted_linear_signal(tmp_path):
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(4000, 32, generator=g)
    direction = torch.randn(32, generator=g)
    labels = torch.sigmoid(acts @ direction / 3)
    model, _ = tiny_model("llama")
    probe = ConfidenceProbe.fit(acts[:3000], labels[:3000], Provenance.of(model, 1), ridge=1.0)
    pred = probe.predict(acts[3000:])
    assert np.corrcoef(pred.numpy(), labels[3000:].numpy())[0, 1] > 0.97
    probe.save(tmp_path / "probe")
    loaded = ConfidenceProbe.load(tmp_path / "probe")
    assert torch.equal(loaded.predict(acts[:5]), probe.predict(acts[:5]))
    assert loaded.provenance == probe.provenance


def test_probe_refuses_a_model_of_another_shape_and_warns_on_another_model():
    model, tok = tiny_model("llama")
    probe = ConfidenceProbe.fit(torch.randn(50, 32), torch.rand(50), Provenance.of(model, 1))
    wide, _ = tiny_model("llama", hidden_size=48, num_attention_heads=4, num_key_value_heads=2)
    trace = Trace("q: 1+2=?", "abc", lambda s: True)
    with pytest.raises(PostlensError, match="d_model 32"):
        probe.predict_trajectory(wide, tok, [trace])
    other, _ = tiny_model("llama", seed=5)
    with pytest.warns(UserWarning, match="different model"):
        readings = probe.predict_trajectory(other, tok, [trace])
    assert readings[0].shape == (4,)  # the end of the prompt, then each of the 3 reasoning tokens


def test_resid_post_matches_the_backends(tiny_dirs):
    path = str(tiny_dirs["llama"])
    pair = ModelPair.load(path, path, backend="nnsight")
    batch = pair.tokenize(["q: 12+3=?", "ab"])
    out = pair.run("base", batch, hooks=["blocks.1.hook_resid_post"])
    mine = resid_post(pair.base.hf_model, batch.input_ids, batch.attention_mask, [1])[1]
    mask = batch.attention_mask.bool()
    assert torch.allclose(mine[mask], out["blocks.1.hook_resid_post"][mask], atol=1e-5)


def test_layer_comparison_runs_end_to_end():
    model, tok = tiny_model("llama")
    traces = [
        Trace(f"q: {i}+1=?", "abcdefgh"[: 3 + i % 5], lambda s: True, label=str(i % 2))
        for i in range(20)
    ]
    scores = np.random.default_rng(0).random((20, 6))
    trajectories = TrajectoryResult(
        scores, scores @ TrajectoryConfig().weights, [t.label for t in traces]
    )
    comparison = fit_layer_probes(model, tok, traces, trajectories, test_fraction=0.25)
    assert [r["layer"] for r in comparison.rows] == [0, 1]
    assert comparison.best_layer in (0, 1)
    assert set(comparison.rows[0]) >= {"pearson", "spearman", "auroc_final_right", "brier", "ece"}


def test_metrics_on_a_hand_case():
    pred = np.array([0.1, 0.4, 0.6, 0.9])
    target = np.array([0.0, 0.5, 0.5, 1.0])
    m = evaluate(pred, target, np.array([False, True]), np.array([0.2, 0.8]))
    assert m["auroc_final_right"] == 1.0 and m["spearman"] == pytest.approx(
        np.corrcoef([0, 1, 2, 3], [0, 1.5, 1.5, 3])[0, 1]
    )
    assert m["brier"] == pytest.approx(np.mean((pred - target) ** 2))
