"""Crosscoders: planted model-specific directions are found as such, with a small ν; resuming,
saving and the JSON round trip; one end-to-end run on tiny planted models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import postlens as pl
from postlens.diffs.crosscoder.analysis import analyse_activations
from postlens.diffs.crosscoder.model import BatchTopK, Crosscoder, CrosscoderConfig, load_crosscoder
from postlens.diffs.crosscoder.result import CrosscoderResult
from postlens.diffs.crosscoder.train import train_crosscoder
from postlens.errors import CheckpointError, ConfigError

D, N_SHARED, BATCH = 16, 12, 256


def planted(n_batches: int, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Sparse activations of (base, child): shared features (a little rotated in the child), one
    direction only the child has and one only the base has, each firing on ~8% of tokens."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g))
    u_child, u_base = q[:, 0], q[:, 1]
    # shared features live in the complement of the two planted directions
    shared = torch.randn(N_SHARED, D - 2, generator=g) @ q[:, 2:].T
    shared = torch.nn.functional.normalize(shared, dim=-1)
    turn = 0.1 * torch.randn(N_SHARED, D - 2, generator=g) @ q[:, 2:].T
    shared_child = torch.nn.functional.normalize(shared + turn, dim=-1)

    def coef(*shape: int) -> torch.Tensor:
        on = torch.rand(*shape, generator=g) < 0.08
        return on * (0.5 + 2 * torch.rand(*shape, generator=g))

    out = []
    for _ in range(n_batches):
        a, c, b = coef(BATCH, N_SHARED), coef(BATCH, 1), coef(BATCH, 1)
        base = a @ shared + b * u_base
        child = a @ shared_child + c * u_child
        out.append(torch.stack([base, child], 1) + 0.01 * torch.randn(BATCH, 2, D, generator=g))
    return out, u_child, u_base


def _best(result: CrosscoderResult, u: torch.Tensor, model: int) -> int:
    dec = result.crosscoder.W_dec.detach()[:, model]
    return int(torch.nn.functional.cosine_similarity(dec, u[None], dim=-1).argmax())


@pytest.fixture(scope="module")
def trained() -> tuple[CrosscoderResult, torch.Tensor, torch.Tensor]:
    batches, u_child, u_base = planted(440)
    cfg = CrosscoderConfig(n_latents=32, k=3, batch_tokens=BATCH, training_tokens=BATCH * 400,
                           lr=3e-3)  # fmt: skip
    cc, log = train_crosscoder(batches[:400], cfg, models=("base", "child"))
    result = analyse_activations(cc, ["base", "child"], batches[400:])
    result.training = log.to_json()
    return result, u_child, u_base


def test_planted_child_only_and_base_only_directions_are_found(trained):
    result, u_child, u_base = trained
    cols = result.columns
    jc, jb = _best(result, u_child, 1), _best(result, u_base, 0)
    dec = result.crosscoder.W_dec.detach()
    assert torch.nn.functional.cosine_similarity(dec[jc, 1], u_child, dim=0) > 0.9
    assert cols["delta_child"][jc] > 0.9 and cols["class_child"][jc] == "child-only"
    assert torch.nn.functional.cosine_similarity(dec[jb, 0], u_base, dim=0) > 0.9
    assert cols["delta_child"][jb] < 0.1 and cols["class_child"][jb] == "base-only"
    # Latent Scaling: the other model holds none of either direction
    for j in (jc, jb):
        assert abs(cols["nu_error_child"][j]) < 0.2 and abs(cols["nu_recon_child"][j]) < 0.2
        assert cols["artifact_child"][j] is False


def test_shared_structure_lands_near_one_half(trained):
    result, u_child, u_base = trained
    cols = result.columns
    live = cols["class_child"] != "dead"
    planted_ids = {_best(result, u_child, 1), _best(result, u_base, 0)}
    rest = [j for j in np.flatnonzero(live) if j not in planted_ids]
    assert abs(float(np.median(cols["delta_child"][rest])) - 0.5) < 0.1
    s = result.summary()
    assert s.counts["child"].shared >= N_SHARED // 2
    assert s.variance_explained["base"] > 0.8 and s.variance_explained["child"] > 0.8


def test_result_json_round_trip(trained):
    result = trained[0]
    back = pl.Result.from_json(result.to_json())
    assert isinstance(back, CrosscoderResult) and back.summary() == result.summary()
    assert back.to_frame().shape == result.to_frame().shape
    assert len(result.plot().data) >= 2


def test_l1_crosscoder_trains_and_penalises_decoder_norms():
    batches, _, _ = planted(40, seed=1)
    cfg = CrosscoderConfig(kind="l1", n_latents=32, batch_tokens=BATCH, training_tokens=BATCH * 40,
                           lr=3e-3, l1_coefficient=0.5)  # fmt: skip
    cc, log = train_crosscoder(batches, cfg)
    assert log.steps == 40 and np.isfinite(log.final_fvu)
    total, mse, sparsity = cc.loss(cc.normalise(batches[0]), l1=0.5)
    assert sparsity > 0 and torch.isclose(total, mse + 0.5 * sparsity)


def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    batches, _, _ = planted(8, seed=2)
    cfg = CrosscoderConfig(n_latents=16, k=2, batch_tokens=BATCH, training_tokens=BATCH * 8,
                           checkpoint_every=4)  # fmt: skip
    whole, _ = train_crosscoder(batches, cfg)
    with pytest.raises(ConfigError, match="ended after 6"):  # interrupted after step 6
        train_crosscoder(batches[:6], cfg, checkpoint=tmp_path / "ck")
    resumed, log = train_crosscoder(batches, cfg, checkpoint=tmp_path / "ck")
    assert log.resumed_from == 4
    assert torch.allclose(resumed.W_dec, whole.W_dec, atol=1e-6)
    assert torch.equal(resumed.threshold, whole.threshold)
    back, meta = load_crosscoder(tmp_path / "ck")
    assert meta["state"]["step"] == 8 and torch.equal(back.W_enc, resumed.W_enc)
    assert not list((tmp_path / "ck").glob("*.pt")) and not list((tmp_path / "ck").glob("*.pkl"))
    other = CrosscoderConfig(n_latents=16, k=3, batch_tokens=BATCH, training_tokens=BATCH * 8)
    with pytest.raises(CheckpointError, match="other settings"):
        train_crosscoder(batches, other, checkpoint=tmp_path / "ck")


def test_batch_top_k_is_saelens_rule():
    sae_topk = pytest.importorskip("sae_lens.saes.batchtopk_sae").BatchTopK
    x = torch.randn(7, 20, generator=torch.Generator().manual_seed(0))
    assert torch.equal(BatchTopK(3)(x), sae_topk(3)(x))


@pytest.mark.parametrize(
    "bad",
    [{"kind": "gated"}, {"k": 0}, {"batch_tokens": 10, "training_tokens": 5},
     {"eval_fraction": 1.0}, {"shared_range": (0.6, 0.4)}, {"nu_threshold": 0}],
)  # fmt: skip
def test_bad_config_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        CrosscoderConfig(**bad)


def _planted_models():
    """Tiny Llamas whose token embeddings are sparse sums of 8 shared features, plus a direction
    on the digits in the child only and one on the letters a–j in the base only; the crosscoder
    reads the embeddings (``blocks.0.hook_resid_pre``). With fewer latents than tokens, the
    crosscoder must find the features rather than one latent per token."""
    from postlens.testing import tiny_model

    base, tok = tiny_model("llama", seed=0)
    child, _ = tiny_model("llama", seed=0)
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    n_vocab = base.get_input_embeddings().weight.shape[0]
    pick = torch.rand(n_vocab, 8, generator=g).argsort(-1)[:, :2]
    coef = torch.zeros(n_vocab, 8).scatter(1, pick, 0.5 + torch.rand(n_vocab, 2, generator=g))
    emb = coef @ q[:, 2:10].T
    digits = tok.convert_tokens_to_ids(list("0123456789"))
    letters = tok.convert_tokens_to_ids(list("abcdefghij"))
    emb_c, emb_b = emb.clone(), emb.clone()
    emb_c[digits] += (0.5 + torch.rand(10, 1, generator=g)) * q[:, 0]
    emb_b[letters] += (0.5 + torch.rand(10, 1, generator=g)) * q[:, 1]
    with torch.no_grad():
        base.get_input_embeddings().weight.copy_(emb_b)
        child.get_input_embeddings().weight.copy_(emb_c)
    return base, child, tok, q[:, 0], q[:, 1]


def test_end_to_end_on_tiny_planted_models(tmp_path):
    from postlens.pair import ModelPair

    base, child, tok, u_child, u_base = _planted_models()
    fam = pl.Family.of(ModelPair.from_models(base, child, tok), "child")
    rng = np.random.default_rng(0)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789 ")
    texts = ["".join(rng.choice(chars, 40)) for _ in range(300)]
    cfg = CrosscoderConfig(hook="blocks.0.hook_resid_pre", n_latents=16, k=3, batch_tokens=256,
                           training_tokens=256 * 400, lr=3e-3, texts_per_chunk=50,
                           checkpoint=str(tmp_path / "cc"))  # fmt: skip
    result = fam.crosscoder(texts, cfg)["child"]
    jc, jb = _best(result, u_child, 1), _best(result, u_base, 0)
    assert result.columns["delta_child"][jc] > 0.9 and result.columns["delta_child"][jb] < 0.1
    assert abs(result.columns["nu_error_child"][jc]) < 0.3
    assert result.contexts and result.provenance["hook"] == "blocks.0.hook_resid_pre"
    assert (tmp_path / "cc" / "model.safetensors").is_file()
    back = pl.load_result(result.to_json())
    assert back.summary() == result.summary()
    forks = fam.forks(
        ["abc 123 ", "q9 x"], pl.ForkConfig(sample=pl.SampleConfig(n=2, max_new_tokens=8))
    )
    pl.link_forks(result, fam.models(), forks)
    rates = result.columns["fork_rate_child"], result.columns["other_rate_child"]
    assert all(len(r) == 16 for r in rates) and "fork_lift_child" in result.to_frame()


def test_report_section_renders_from_the_result(trained):
    from postlens.reporting.sections.crosscoder import SECTION

    result = trained[0]
    html = SECTION.render(result)
    assert "child-only" in html and "Latent Scaling" in html and "plotly" in html
    assert "child-only" in SECTION.sentences(result)[0]
    assert SECTION.default is False and SECTION.cards(result, "child")


def test_cli_writes_the_result_as_json(tmp_path):
    from typer.testing import CliRunner

    from postlens.cli import app
    from postlens.testing import save_tiny_model

    base = save_tiny_model(tmp_path / "base", arch="llama", seed=0)
    post = save_tiny_model(tmp_path / "post", arch="llama", seed=1)
    prompts = tmp_path / "texts.txt"
    prompts.write_text("\n".join(f"text {i} about {i * 7} apples." for i in range(40)))
    out = tmp_path / "cc.json"
    args = ["crosscoder", str(base), str(post), "--prompts", str(prompts), "--hook",
            "blocks.1.hook_resid_post", "--latents", "16", "--k", "2", "--tokens", "512",
            "--batch-tokens", "128", "--json", str(out)]  # fmt: skip
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    back = pl.load_result(out)
    assert back.models == ["base", "post"] and back.hook == "blocks.1.hook_resid_post"
    assert set(back.provenance["models"]["base"]["files"]) == {"model.safetensors"}
    bad = CliRunner().invoke(app, [*args[:-2], "--kind", "gated"])
    assert bad.exit_code != 0 and "gated" in bad.output


def test_latent_scaling_follows_the_papers_fits_on_full_reconstructions():
    """ν as Minder et al.'s compute_scalers fits it, against float64 by hand: a latent both
    models hold has ν ≈ 1 (its decoder in the other model is part of that model's full
    reconstruction, bias included); a child-only latent the base rebuilds with another latent
    (Latent Decoupling) has ν^r equal to the share rebuilt."""
    from postlens.diffs.crosscoder.latent_scaling import LatentScaling

    g = torch.Generator().manual_seed(0)
    d, n = 8, 64
    u, w = torch.randn(d, generator=g), torch.randn(d, generator=g)
    f = torch.rand(n, 2, generator=g) + 0.1  # latent 0: tested; latent 1: the rebuilder
    bias = 0.3 * torch.randn(2, d, generator=g)
    # Shared latent 0 (same decoder in both models), latent 1 writes 0.4 u into the base only.
    w_dec = torch.stack([torch.stack([u, u]), torch.stack([0.4 * u + w, w])])  # [latent, model, d]
    x_hat = torch.einsum("bl,lmd->bmd", f, w_dec) + bias
    x = x_hat + 0.05 * torch.randn(n, 2, d, generator=g)

    def hand(target_m, fj):  # Σ f ⟨u, y⟩ / (‖u‖² Σ f²) in float64
        u64 = u.double()
        return float(
            (fj.double() * (target_m.double() @ u64)).sum() / (u64 @ u64 * (fj.double() ** 2).sum())
        )

    fit = LatentScaling([0], own=[1], other=[0], directions=u[None], n_models=2)
    fit.update(f, x, x_hat, w_dec)
    beta = {m: hand(x_hat[:, m], f[:, 0]) for m in (0, 1)}
    err = {m: hand(x[:, m] - x_hat[:, m] + f[:, :1] * w_dec[0, m], f[:, 0]) for m in (0, 1)}
    nu = fit.nu()
    assert float(nu["nu_recon"][0]) == pytest.approx(beta[0] / beta[1], rel=1e-5)
    assert float(nu["nu_error"][0]) == pytest.approx(err[0] / err[1], rel=1e-5)
    assert float(nu["nu_error"][0]) == pytest.approx(1.0, abs=0.05)  # shared: ≈ 1
    assert float(nu["nu_recon"][0]) > 0.9


def test_a_child_only_direction_split_over_two_co_firing_latents_is_found_as_one():
    """Two latents fire on the same tokens, their child decoders add up to u and their base
    decoders cancel: each alone looks shared (Δ ≈ 0.5), the pair read as one direction is
    child-only (merged Δ = 1, by hand)."""
    d = 4
    u, a, w = torch.eye(d)[0] * 2, torch.eye(d)[1] * 0.5, torch.eye(d)[2]
    cfg = CrosscoderConfig(n_latents=4, kind="l1")
    cc = Crosscoder(2, d, cfg)
    with torch.no_grad():
        cc.W_enc.zero_()
        cc.W_enc[1, :, 0] = u / u.norm() ** 2  # f = s on a token x_child = s·u
        cc.W_enc[1, :, 1] = u / u.norm() ** 2
        cc.W_enc[0, :, 2] = torch.eye(d)[3]  # latent 2: a shared direction, other tokens
        cc.W_enc[1, :, 2] = torch.eye(d)[3]
        cc.W_dec.zero_()
        cc.W_dec[0, 1], cc.W_dec[1, 1] = u / 2 + a, u / 2 - a
        cc.W_dec[0, 0], cc.W_dec[1, 0] = w, -w
        cc.W_dec[2, 0] = cc.W_dec[2, 1] = torch.eye(d)[3]
        cc.W_dec[3, 0] = cc.W_dec[3, 1] = torch.eye(d)[3]  # never fires
    s = torch.rand(40, generator=torch.Generator().manual_seed(0)) + 0.5
    x = torch.zeros(80, 2, d)
    x[:40, 1] = s[:, None] * u
    x[40:, :, 3] = s[:, None]
    result = analyse_activations(cc, ["base", "child"], [x])
    classes = result.columns["class_child"]
    assert classes[0] != "child-only" and classes[1] != "child-only"
    assert abs(result.columns["delta_child"][0] - 0.5) < 0.1
    (pair,) = [r for r in result.merged if r["latents"] == [0, 1]]
    assert pair["jaccard"] == 1.0 and pair["delta_child"] == pytest.approx(1.0)
    assert pair["class_child"] == "child-only"
    assert result.summary().merged_child_only == {"child": 1}
    back = pl.Result.from_json(result.to_json())
    assert back.merged == result.merged and back.summary() == result.summary()
    with pytest.raises(ConfigError, match="cofire_jaccard"):
        CrosscoderConfig(cofire_jaccard=0)
