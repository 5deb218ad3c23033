"""SAE latent diffing on a planted direction; SAE checks; SAELens training on a tiny model."""

from __future__ import annotations

import copy

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from postlens.diffs.features.compute import (
    FeatureDiff,
    diff_features,
    encode_prompts,
    persona_features,
    top_contexts,
)
from postlens.diffs.features.sae import (
    SAETrainConfig,
    check_sae,
    load_sae,
    sae_quality,
    save_sae,
    train_sae,
)
from postlens.errors import CheckpointError, PostlensError
from postlens.pair import ModelPair
from postlens.probes.personas.directions import PersonaDirection
from postlens.probes.provenance import Provenance
from postlens.testing import planted_shift_model, tiny_model

PROMPTS = [f"q: {a}+{b}=?" for a in range(1, 6) for b in range(3, 7)]
TEXTS = [f"q: {a}+{b}=? {a + b}" for a in range(40) for b in range(10)]


def _sae(d_in=32, hook="blocks.1.hook_resid_post", d_sae=16):
    torch.manual_seed(0)
    return StandardSAE(
        StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook))
    )


def _planted_sae(v):
    """Latent 5 reads and writes the unit v direction and is always active (bias 100), so its
    mean activation moves by exactly |v| in a model whose resid_post at layer 1 shifts by v."""
    sae, unit = _sae(), v / v.norm()
    with torch.no_grad():
        sae.b_dec.zero_()
        sae.W_enc[:, 5] = unit
        sae.b_enc[5] = 100.0
        sae.W_dec[5] = unit
    return sae


@pytest.fixture(scope="module")
def planted():
    """Base; 'rl' adds v to resid_post at layer 1 (MLP output bias); 'sft' changes nothing."""
    base, post, tok, v = planted_shift_model(seed=0)
    other = copy.deepcopy(base)
    pairs = {
        name: ModelPair.from_models(base, child, tok, backend="nnsight")
        for name, child in (("sft", other), ("rl", post))
    }
    return pairs, v, tok


def test_latent_aligned_with_the_planted_vector_is_found_and_flagged(planted):
    pairs, v, tok = planted
    sae = _planted_sae(v)
    diff, feats = diff_features(sae, pairs, PROMPTS, top_n=3)
    assert diff.change("rl")[5] == pytest.approx(float(v.norm()), rel=1e-4)
    assert diff.top("rl")[0] == 5
    assert abs(diff.change("sft")).max() == 0.0 and diff.moved("sft") == 0
    assert diff.l1_change("rl") > diff.l1_change("sft") == 0.0
    direction = PersonaDirection("careful", v / v.norm(), Provenance.of(pairs["rl"].base, 1))
    flags = diff.flag_personas(sae, {"careful": direction}, cos_threshold=0.9)
    assert flags[5]["persona"] == "careful"
    assert flags[5]["rl"] == "amplified" and flags[5]["sft"] == "unchanged"
    assert flags[5]["evidence"]["decoder_cosine"] == pytest.approx(1.0)
    overlap = diff.overlap()
    assert overlap["children"] == ["sft", "rl"] and overlap["jaccard_top_n"] < 1
    assert overlap["moved_by_both"] == 0 and overlap["moved_only_sft"] == []
    frame = diff.to_frame()
    assert frame.loc[5, "persona"] == "careful" and "change_rl" in frame and "moved_rl" in frame
    ctx = top_contexts(feats["base"], PROMPTS, tok, latent=5, k=3)
    assert len(ctx) == 3 and ctx[0]["activation"] >= ctx[-1]["activation"]
    assert (
        ctx[0]["tokens"][-1]
        == tok.convert_ids_to_tokens(tok(PROMPTS[ctx[0]["prompt"]]).input_ids)[ctx[0]["position"]]
    )
    js = diff.to_json()
    assert js["top"]["rl"][0]["latent"] == 5 and js["top"]["rl"][0]["persona"] == "careful"
    assert "<table" in diff._repr_html_()


def test_pair_form_end_to_end_with_tagged_texts(planted):
    """One ModelPair (child 'post'); flags from decoder cosine and from tagged texts at once."""
    pairs, v, tok = planted
    sae = _planted_sae(v)
    direction = PersonaDirection("careful", v / v.norm(), Provenance.of(pairs["rl"].base, 1))
    tagged = {"zzz": [f"zzz {p}" for p in PROMPTS], "plain": PROMPTS}
    diff = persona_features(
        sae, pairs["rl"], PROMPTS, {"careful": direction}, tagged, cos_threshold=0.9,
        auroc_threshold=0.99,
    )  # fmt: skip
    assert diff.children == ["post"] and diff.overlap() == {}
    assert diff.flags[5]["persona"] == "careful" and diff.flags[5]["post"] == "amplified"
    by_tag = [f for f in diff.flags.values() if "zzz" in f["personas"]]
    assert by_tag, "no latent separates the tagged texts"
    assert all(
        max(f["personas"]["zzz"]["tag_auroc"], 1 - f["personas"]["zzz"]["tag_auroc"]) >= 0.99
        for f in by_tag
    )
    assert 5 in diff.contexts and diff.contexts[5][0]["context"]


def test_tagged_texts_against_untagged(planted):
    pairs, _, _ = planted
    sae = _sae()
    backend = pairs["rl"].base
    diff, _ = diff_features(sae, pairs, PROMPTS[:4])
    tagged = encode_prompts(sae, backend, [f"zzz {p}" for p in PROMPTS])
    untagged = encode_prompts(sae, backend, PROMPTS)
    flags = diff.flag_personas(sae, tagged={"zzz": tagged}, untagged=untagged, auroc_threshold=0.99)
    assert flags and all(f["persona"] == "zzz" for f in flags.values())


def test_wrong_width_or_hook_is_a_clear_error(planted):
    pairs, v, _ = planted
    model, _ = tiny_model("gpt2")
    with pytest.raises(PostlensError, match="width 48"):
        check_sae(_sae(d_in=48), model)
    with pytest.raises(PostlensError, match="width 48"):
        diff_features(_sae(d_in=48), pairs, PROMPTS)
    with pytest.raises(PostlensError, match="layer 5 out of range"):
        check_sae(_sae(hook="blocks.5.hook_resid_post"), model)
    with pytest.raises(PostlensError, match="residual stream only"):
        check_sae(_sae(hook="blocks.1.mlp.hook_post"), model)
    diff, _ = diff_features(_sae(), pairs, PROMPTS[:2])
    elsewhere = PersonaDirection("careful", v / v.norm(), Provenance.of(model, 0))
    with pytest.raises(PostlensError, match="reads blocks.0.hook_resid_post, the SAE"):
        diff.flag_personas(_sae(), {"careful": elsewhere})
    with pytest.raises(CheckpointError, match="no such folder"):
        load_sae("/nonexistent/sae")
    with pytest.raises(ValueError, match="'base'"):
        FeatureDiff({"rl": diff.freq["rl"]}, {"rl": diff.mean["rl"]})


def test_saelens_trainer_on_fed_activations(tmp_path):
    """Any backend (here nnsight, in memory): SAELens's trainer on activations postlens feeds."""
    model, tok = tiny_model("llama", seed=0)
    pair = ModelPair.from_models(model, copy.deepcopy(model), tok, backend="nnsight")
    config = SAETrainConfig(
        layer=1, training_tokens=16384, batch_tokens=512, context=16, l1_coefficient=0.05, lr=3e-3
    )
    sae = train_sae(pair.base, TEXTS, config)
    quality = sae_quality(sae, pair.base, TEXTS[:50])
    assert quality["variance_explained"] > 0.5 and quality["l0"] > 0
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert loaded.cfg.d_in == 32 and check_sae(loaded, model) == "blocks.1.hook_resid_post"
    with pytest.raises(PostlensError, match="transformer_lens backend"):
        train_sae(pair.base, TEXTS, config, method="runner")
    with pytest.raises(ValueError, match="batch_tokens"):
        SAETrainConfig(layer=1, training_tokens=10, batch_tokens=512)


def test_saelens_training_runner_on_the_bridge(tiny_dirs):
    """SAELens's own runner, on the TransformerBridge with an in-memory dataset: a few steps."""
    pair = ModelPair.load(
        str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="transformer_lens"
    )
    config = SAETrainConfig(layer=1, training_tokens=2048, batch_tokens=512, context=16)
    sae = train_sae(pair.base, TEXTS, config)
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    assert check_sae(sae, pair.base.hf_model) == config.hook
    assert sae_quality(sae, pair.base, TEXTS[:10])["n_tokens"] > 0
