"""SAE latent diffing on a planted direction; SAE checks; SAELens training on a tiny model."""

from __future__ import annotations

import copy

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from postlens.diffs.features import diff_features, encode_prompts, top_contexts
from postlens.diffs.sae import SAETrainConfig, check_sae, load_sae, sae_quality, train_sae
from postlens.errors import CheckpointError, PostlensError
from postlens.pair import ModelPair, make_backend
from postlens.probes.personas import PersonaDirection
from postlens.probes.provenance import Provenance
from postlens.testing import tiny_model

PROMPTS = [f"q: {a}+{b}=?" for a in range(1, 6) for b in range(3, 7)]


def _sae(d_in=32, hook="blocks.1.hook_resid_post", d_sae=16):
    torch.manual_seed(0)
    return StandardSAE(
        StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook))
    )


@pytest.fixture(scope="module")
def planted():
    base, tok = tiny_model("gpt2", seed=0)
    post = copy.deepcopy(base)
    v = torch.zeros(32)
    v[3], v[7] = 2.0, -1.0
    with torch.no_grad():
        post.transformer.h[1].mlp.c_proj.bias += v
    other = copy.deepcopy(base)  # a second child that changed nothing
    pairs = {
        name: ModelPair.from_models(base, child, tok, backend="nnsight")
        for name, child in (("sft", other), ("rl", post))
    }
    return pairs, v, tok


def test_latent_aligned_with_the_planted_vector_is_found_and_flagged(planted):
    pairs, v, tok = planted
    sae = _sae()
    unit = v / v.norm()
    with torch.no_grad():
        sae.b_dec.zero_()
        sae.W_enc[:, 5] = unit  # latent 5 reads the planted direction...
        sae.b_enc[5] = 100.0  # ...and is always active, so its mean moves by exactly |v|
        sae.W_dec[5] = unit
    diff, feats = diff_features(sae, pairs, PROMPTS, top_n=3)
    assert diff.change("rl")[5] == pytest.approx(float(v.norm()), rel=1e-4)
    assert diff.top("rl")[0] == 5
    assert abs(diff.change("sft")).max() == 0.0
    assert diff.moved("sft") == 0 and diff.moved("rl") >= 1
    direction = PersonaDirection("careful", unit, Provenance.of(pairs["rl"].base.hf_model, 1))
    flags = diff.flag_personas(sae, {"careful": direction}, cos_threshold=0.9)
    assert (
        flags[5]["persona"] == "careful"
        and flags[5]["rl"] == "amplified"
        and flags[5]["sft"] == "unchanged"
    )
    assert flags[5]["evidence"]["decoder_cosine"] == pytest.approx(1.0)
    overlap = diff.overlap()
    assert overlap["children"] == ["sft", "rl"] and 0 <= overlap["jaccard_top_n"] <= 1
    frame = diff.to_frame()
    assert frame.loc[5, "persona"] == "careful" and "change_rl" in frame
    ctx = top_contexts(feats["base"], PROMPTS, tok, latent=5, k=3)
    assert len(ctx) == 3 and ctx[0]["activation"] >= ctx[-1]["activation"]
    assert diff.to_json()["top"]["rl"][0]["latent"] == 5


def test_tagged_prompts_flag_a_separating_latent(planted):
    pairs, _, tok = planted
    sae = _sae()
    z = tok.convert_tokens_to_ids("z")
    embed = pairs["rl"].base.hf_model.transformer.wte.weight[z].detach()
    diff, _ = diff_features(sae, pairs, PROMPTS[:4])
    backend = pairs["rl"].base
    tagged = encode_prompts(sae, backend, [f"zzz {p}" for p in PROMPTS])
    untagged = encode_prompts(sae, backend, PROMPTS)
    flags = diff.flag_personas(sae, tagged={"zzz": tagged}, untagged=untagged, auroc_threshold=0.99)
    assert flags, f"no latent separates the tagged prompts (embed norm {float(embed.norm()):.2f})"
    assert all(f["persona"] == "zzz" and f["evidence"]["tag_auroc"] >= 0.99 for f in flags.values())


def test_wrong_width_or_hook_is_a_clear_error():
    model, _ = tiny_model("gpt2")
    with pytest.raises(PostlensError, match="width 48"):
        check_sae(_sae(d_in=48), model)
    with pytest.raises(PostlensError, match="layer 5 out of range"):
        check_sae(_sae(hook="blocks.5.hook_resid_post"), model)
    with pytest.raises(PostlensError, match="residual stream only"):
        check_sae(_sae(hook="blocks.1.mlp.hook_post"), model)
    with pytest.raises(CheckpointError, match="no such folder"):
        load_sae("/nonexistent/sae")


def test_saelens_training_runner_on_a_tiny_model(tiny_dirs, tmp_path):
    pair = ModelPair.load(
        str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="transformer_lens"
    )
    texts = [f"q: {a}+{b}=? {a + b}" for a in range(40) for b in range(10)]
    sae = train_sae(
        pair.base,
        texts,
        SAETrainConfig(
            layer=1,
            training_tokens=65536,
            batch_tokens=512,
            context=16,
            l1_coefficient=0.05,
            lr=3e-3,
        ),
    )
    quality = sae_quality(sae, pair.base, texts[:50])
    assert quality["variance_explained"] > 0.5 and quality["l0"] > 0
    sae.save_model(str(tmp_path / "sae"))
    assert load_sae(tmp_path / "sae").cfg.d_in == 32
    nn = make_backend("nnsight", pair.base.hf_model, pair.tokenizer, "")
    with pytest.raises(PostlensError, match="transformer_lens backend"):
        train_sae(nn, texts, SAETrainConfig(layer=1))
