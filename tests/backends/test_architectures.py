"""The architecture matrix: each causal-LM family researchers bring, through both backends.

Each family is a tiny random-weight model built from its config (`postlens.testing.tiny_model`).
The reference is transformers' own forward, not postlens's module layouts: its logits and its
``hidden_states`` (the input of each block, then the final norm's output). ``hook_resid_mid`` is
checked as the block's output minus what its MLP adds, read at the module that adds it (named
below per family, from transformers' modeling code). Then a planted pair (one block's MLP output
projection changed in the child) is sampled from and goes through weights, forks and activations
(with exact patching) on both backends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import postlens as pl
from postlens import ModelPair
from postlens.testing import TINY_ARCHS, save_model, tiny_model

BACKENDS = ["nnsight", "transformer_lens"]
TEXTS = ["q: 12 + 34 = ? a: 46. the cat sat on the mat", "hello world, 7"]
#: Per family, the module of a block whose output is the MLP's addition to the residual stream
#: (``None``: a parallel residual, which has no resid_mid).
MLP_ADDS = {
    "llama": "mlp",
    "mistral": "mlp",
    "qwen2": "mlp",
    "qwen3": "mlp",
    "phi3": "mlp",
    "gemma2": "post_feedforward_layernorm",
    "gemma3_text": "post_feedforward_layernorm",
    "olmo2": "post_feedforward_layernorm",
    "gpt2": "mlp",
    "gpt_neox": None,
}
#: The planted change: the MLP output projection of block 1, per family (transformers' names).
LLAMA_PLANTED = "model.layers.1.mlp.down_proj.weight"
PLANTED = {
    "gpt2": "transformer.h.1.mlp.c_proj.weight",
    "gpt_neox": "gpt_neox.layers.1.mlp.dense_4h_to_h.weight",
}


def test_the_matrix_covers_the_families_researchers_bring():
    assert set(TINY_ARCHS) == set(MLP_ADDS)


@pytest.fixture(scope="module")
def arch_dirs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Per family: a tiny base and a child with block 1's MLP output projection changed."""
    dirs = {}
    for arch in TINY_ARCHS:
        root = tmp_path_factory.mktemp(arch)
        model, tok = tiny_model(arch, seed=0)
        base = save_model(model, tok, root / "base")
        name = PLANTED.get(arch, LLAMA_PLANTED)
        with torch.no_grad():
            weight = model.get_parameter(name)
            weight.add_(0.5 * torch.randn_like(weight, generator=torch.Generator().manual_seed(1)))
        dirs[arch] = (base, save_model(model, tok, root / "child"))
    return dirs


def _reference(path: Path, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain transformers: logits, the residual at every block boundary, and resid_mid."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    n = model.config.num_hidden_layers
    adds, handles = {}, []
    mlp = MLP_ADDS[model.config.model_type]
    blocks = [m for name, m in model.named_modules() if name.endswith((".layers", ".h"))][0]
    for i, block in enumerate(blocks):
        if mlp is not None:
            handles.append(
                block.get_submodule(mlp).register_forward_hook(
                    lambda mod, args, out, i=i: adds.__setitem__(i, out)
                )
            )
        handles.append(
            block.register_forward_hook(
                lambda mod, args, out, i=i: adds.__setitem__(f"post{i}", out)
            )
        )
    with torch.no_grad():
        out = model(batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    for h in handles:
        h.remove()
    hs = out.hidden_states
    acts = {f"blocks.{i}.hook_resid_pre": hs[i] for i in range(n)}
    acts |= {f"blocks.{i}.hook_resid_post": hs[i + 1] for i in range(n - 1)}
    acts["ln_final.hook_normalized"] = hs[n]
    if mlp is not None:
        acts |= {f"blocks.{i}.hook_resid_mid": _first(adds[f"post{i}"]) - adds[i] for i in range(n)}
    return out.logits, acts


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _assert_close(a, b, mask, what, tol=1e-4):
    a, b = a.float()[mask], b.float()[mask]
    excess = ((a - b).abs() - tol * (1 + b.abs())).max().item()
    assert excess <= 0, f"{what}: max |diff| {(a - b).abs().max().item():.3g}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_logits_and_residuals_equal_a_plain_forward(arch_dirs, arch, backend):
    base, _ = arch_dirs[arch]
    pair = ModelPair.load(str(base), str(base), backend=backend)
    batch = pair.tokenize(TEXTS)
    ref_logits, ref = _reference(base, batch)
    out = pair.run("base", batch, hooks=list(ref))
    mask = batch.attention_mask.bool()
    _assert_close(out.logits, ref_logits, mask, f"{arch} logits")
    for name, value in ref.items():
        _assert_close(out[name], value, mask, f"{arch} {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_a_planted_pair_runs_through_the_analyses(arch_dirs, arch, backend):
    base, child = arch_dirs[arch]
    fam = pl.load(str(base), post=str(child), backend=backend)
    seqs = fam.sample(TEXTS, pl.SampleConfig(n=2, max_new_tokens=12, seed=0))
    changed = fam.weights(progress=False)["post"].to_frame().query("rel_norm > 0")
    assert list(changed["name"]) == [PLANTED.get(arch, LLAMA_PLANTED)]
    assert fam.forks(seqs)["post"].summary().n_positions > 0
    config = pl.ActivationConfig(patching="exact", lens_positions=None)
    layers = fam.activations(seqs, config)["post"].to_frame().set_index("layer")
    assert layers.cosine_mean[0] == pytest.approx(1.0, abs=1e-5)  # upstream of the change
    assert layers.cosine_mean[1] < 1 - 1e-4  # the planted block moves the residual
    # patching block 1's output into the base recovers the whole output KL (nothing after it)
    assert layers.patch_recovered[1] == pytest.approx(1.0, abs=1e-3)


PROBLEMS = [pl.PromptRecord("q: 12 + 34 = ?", answer="46"), pl.PromptRecord("q: 5 + 6 = ?", answer="11")]  # fmt: skip


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_every_other_pair_analysis_runs_on_a_planted_pair(arch_dirs, arch, tmp_path):
    """pass@k, extrapolation, fork substitution, ADL and a crosscoder, each cut to seconds;
    the backend alternates by family so that both see every analysis."""
    base, child = arch_dirs[arch]
    backend = BACKENDS[TINY_ARCHS.index(arch) % 2]
    fam = pl.load(str(base), post=str(child), backend=backend, inputs=pl.Inputs(texts=TEXTS * 4))
    sample = pl.SampleConfig(n=2, limit=2, max_new_tokens=6, seed=0)
    passk = fam.passk(PROBLEMS, pl.PassKConfig(sample=sample))
    assert list(passk.summary().pass_at_1) == ["base", "post"]
    ends = fam.extrapolate(PROBLEMS, pl.ExtrapolateConfig(alphas=(0.0, 1.0), sample=sample))
    assert [row.kl["post"] for row in ends.rows][1] == pytest.approx(0.0, abs=1e-5)  # α = 1
    cfg = pl.SubstitutionConfig(taus=(-float("inf"), float("inf")), sample=sample)
    assert fam.substitute(PROBLEMS, cfg)["post"].rows
    adl = pl.ADLConfig(k=2, n_texts=4, alphas=(0.0, 2.0), limit=1, n_prompts=1, sample=sample)
    assert fam.adl(config=adl)["post"].summary() is not None
    cc = pl.CrosscoderConfig(
        hook="blocks.1.hook_resid_post", n_latents=8, k=2, batch_tokens=32,
        training_tokens=32 * 4, texts_per_chunk=8, checkpoint=str(tmp_path / "cc"),
    )  # fmt: skip
    assert fam.crosscoder(TEXTS * 4, cc)["post"].summary() is not None


def test_a_family_neither_backend_knows_is_refused_by_name(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from postlens.testing import build_tokenizer

    tok = build_tokenizer()
    config = AutoConfig.for_model(
        "biogpt", vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    path = save_model(AutoModelForCausalLM.from_config(config), tok, tmp_path / "biogpt")
    with pytest.raises(pl.NotSupportedError, match="'biogpt'.*backend='transformer_lens'"):
        pl.load(str(path), post=str(path), backend="nnsight")
    with pytest.raises(pl.NotSupportedError, match="TransformerBridge does not support BioGpt"):
        pl.load(str(path), post=str(path), backend="transformer_lens")
