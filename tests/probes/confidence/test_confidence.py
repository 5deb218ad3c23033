"""Confidence probes: planted signal, held-out metrics, save/load with provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from postlens import ModelPair
from postlens.errors import PostlensError
from postlens.probes.confidence.layers import fit_layer_probes
from postlens.probes.confidence.probe import ConfidenceProbe, evaluate
from postlens.probes.confidence.trajectory import Trace, TrajectoryConfig, TrajectoryResult
from postlens.probes.provenance import Provenance
from postlens.probes.readings import resid_post
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


def test_auto_ridge_picks_a_strong_penalty_for_noise_and_a_weak_one_for_signal():
    model, _ = tiny_model("llama")
    g = torch.Generator().manual_seed(1)
    acts = torch.randn(600, 32, generator=g)
    signal = ConfidenceProbe.fit(acts, torch.sigmoid(acts[:, 0] * 2), Provenance.of(model, 0))
    noise = ConfidenceProbe.fit(acts, torch.rand(600, generator=g), Provenance.of(model, 0))
    assert signal.ridge < noise.ridge and signal.cv_mse < noise.cv_mse
    with pytest.raises(ValueError, match="ridge"):
        ConfidenceProbe.fit(acts, acts[:, 0], Provenance.of(model, 0), ridge=-1.0)
    with pytest.raises(ValueError, match="labels"):
        ConfidenceProbe.fit(acts, acts[:10, 0], Provenance.of(model, 0))


def test_layer_comparison_recovers_a_signal_planted_in_real_activations(tiny_dirs):
    """Scores defined as a linear read-out of layer 1 at each cut: layer 1's probe finds them,
    beats the cut-only baseline, ranks traces within a cut and tracks the mean trajectory."""
    from postlens.probes.confidence.probe import cut_activations

    pair = ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="nnsight")
    traces = [
        Trace(f"q: {i}+{i % 7}=?", " " + "abcdefghij"[: 4 + i % 6], lambda s: True)
        for i in range(60)
    ]
    acts = cut_activations(pair.post, None, traces, 5, [1])[1]
    direction = torch.randn(32, generator=torch.Generator().manual_seed(3))
    z = (acts - acts.mean(0)) @ direction
    scores = torch.sigmoid(z / z.std()).numpy().reshape(60, 6)
    traj = TrajectoryResult(
        scores, scores @ TrajectoryConfig().weights, [""] * 60, correct=scores[:, -1] > 0.5
    )
    comparison = fit_layer_probes(pair.post, None, traces, traj, test_fraction=0.3, name="tiny")
    row = {r["layer"]: r for r in comparison.rows}[1]
    assert comparison.best_layer == 1
    assert row["pearson"] > 0.95 and row["pearson_within_cut"] > 0.9
    assert row["pearson"] > (comparison.baseline["pearson"] or 0) + 0.3
    assert row["auroc_final_right"] > 0.9 and row["overconfidence_pearson"] > 0.8
    tracked = comparison.tracking()
    np.testing.assert_allclose(tracked["probe"], tracked["behavioural"], atol=0.05)
    frame = comparison.to_frame()
    assert frame["probe"].tolist() == ["linear", "linear", "baseline (cut only)"]
    assert comparison.best_probe.provenance.model == "tiny"
    assert "best layer 1" in comparison._repr_html_()


def test_predict_trajectory_reads_every_token_on_a_backend_or_a_bare_model(tiny_dirs):
    pair = ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="nnsight")
    probe = ConfidenceProbe.fit(
        torch.randn(40, 32), torch.rand(40), Provenance.of(pair.post, 1), ridge=1.0
    )
    traces = [Trace("q: 1+2=?", " 12345", lambda s: True), Trace("q: 10+2=?", " 1", bool)]
    on_backend = probe.predict_trajectory(pair.post, traces)
    on_bare = probe.predict_trajectory(pair.post.hf_model, pair.tokenizer, traces, batch_size=1)
    assert [len(r) for r in on_backend] == [7, 3]  # end of prompt + each reasoning token
    for a, b in zip(on_backend, on_bare, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # padding in a batch changes nothing
    # The reading at the cuts equals cut_predictions (cut k = entry round(k * n / K)).
    cuts = probe.cut_predictions(pair.post, None, traces[:1], n_cuts=3)
    np.testing.assert_allclose(cuts[0], on_backend[0][[0, 2, 4, 6]], atol=1e-5)


def test_compatibility_checks_and_artifact_errors(tmp_path):
    from postlens.errors import CheckpointError
    from postlens.probes.provenance import check_compatible

    model, _ = tiny_model("llama")
    prov = Provenance.of(model, 1)
    deeper, _ = tiny_model("llama", num_hidden_layers=3)
    with pytest.raises(PostlensError, match="3 layers"):
        check_compatible(prov, deeper)
    with pytest.warns(UserWarning, match="different model"):
        check_compatible(prov, deeper, strict_shape=False)
    shallow, _ = tiny_model("llama", num_hidden_layers=1)
    with pytest.raises(PostlensError, match="no layer 1"):
        check_compatible(prov, shallow, strict_shape=False)
    with pytest.raises(ValueError, match="out of range"):
        Provenance.of(model, 2)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="bad"):
        ConfidenceProbe.load(tmp_path / "bad")
    probe = ConfidenceProbe.fit(torch.randn(20, 32), torch.rand(20), prov)
    probe.save(tmp_path / "p")
    probe.save(tmp_path / "p")  # overwriting an artifact leaves no temporary folder behind
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad", "p"]


def test_logistic_probe_fits_rates_and_keeps_its_link(tmp_path):
    model, _ = tiny_model("llama")
    g = torch.Generator().manual_seed(2)
    acts = torch.randn(900, 32, generator=g)
    rates = torch.sigmoid(acts @ torch.randn(32, generator=g) / 2)
    labels = torch.binomial(torch.full_like(rates, 8.0), rates, generator=g) / 8
    prov = Provenance.of(model, 1)
    logistic = ConfidenceProbe.fit(acts[:600], labels[:600], prov, method="logistic")
    ridge = ConfidenceProbe.fit(acts[:600], labels[:600], prov)
    assert logistic.link == "sigmoid" and logistic.cv_mse is not None
    assert np.corrcoef(logistic.predict(acts[600:]).numpy(), rates[600:].numpy())[0, 1] > 0.97
    assert logistic.cv_mse < ridge.cv_mse  # the right link for a logistic signal
    logistic.save(tmp_path / "p")
    loaded = ConfidenceProbe.load(tmp_path / "p")
    assert loaded.link == "sigmoid"
    assert torch.allclose(loaded.predict(acts[:5]), logistic.predict(acts[:5]))
    with pytest.raises(ValueError, match="method"):
        ConfidenceProbe.fit(acts, labels, prov, method="svm")
