"""Both backends give the logits and activations of a plain `transformers` forward.

The reference is computed independently, with torch hooks on the plain Hugging Face modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from postlens import ModelPair
from postlens.backends.arch import layout_for

BACKENDS = ["transformer_lens", "nnsight"]
TEXTS = ["q: 12 + 34 = ?", "hello world, 7"]


def _module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    return model.get_submodule(path) if path else model


def reference(model_dir: Path, input_ids, attention_mask, interventions=None):
    """Plain HF forward; returns logits and every hook point, optionally replacing one."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lay = layout_for(model.config.model_type)
    acts, handles = {}, []
    interventions = interventions or {}

    def block(i, sub=""):
        return _module(model, f"{lay.layers}.{i}" + (f".{sub}" if sub else ""))

    def pre_hook(name, attn_heads=None):
        def fn(mod, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            view = x.reshape(*x.shape[:-1], attn_heads, -1) if attn_heads else x
            if name in interventions:
                view = interventions[name](view)
            acts[name] = view
            x = view.reshape(x.shape)
            if args:
                return (x, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": x}

        return fn

    def out_hook(name):
        def fn(mod, args, out):
            x = out[0] if isinstance(out, tuple) else out
            if name in interventions:
                x = interventions[name](x)
            acts[name] = x
            return (x, *out[1:]) if isinstance(out, tuple) else x

        return fn

    n_heads = model.config.num_attention_heads
    for i in range(model.config.num_hidden_layers):
        p = f"blocks.{i}."
        handles += [
            block(i).register_forward_pre_hook(pre_hook(p + "hook_resid_pre"), with_kwargs=True),
            block(i, lay.attn_out_proj).register_forward_pre_hook(
                pre_hook(p + "attn.hook_z", n_heads), with_kwargs=True
            ),
            block(i, lay.mlp_out_proj).register_forward_pre_hook(
                pre_hook(p + "mlp.hook_post"), with_kwargs=True
            ),
            block(i).register_forward_hook(out_hook(p + "hook_resid_post")),
        ]
    handles.append(
        _module(model, lay.final_norm).register_forward_hook(out_hook("ln_final.hook_normalized"))
    )
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    for h in handles:
        h.remove()
    return logits, acts


def _pair_and_reference(path, backend):
    """A pair of the model at `path` with itself, a batch of TEXTS, and the plain forward's
    logits and activations on it."""
    pair = ModelPair.load(str(path), str(path), backend=backend)
    batch = pair.tokenize(TEXTS)
    return pair, batch, *reference(path, batch.input_ids, batch.attention_mask)


def _assert_close(a, b, mask, what, atol=1e-4, rtol=1e-4):
    """float32 tolerance: |a - b| <= atol + rtol * |b| at every real (unpadded) position."""
    a, b = a.float()[mask], b.float()[mask]
    excess = ((a - b).abs() - (atol + rtol * b.abs())).max().item()
    assert excess <= 0, f"{what}: max |diff| {(a - b).abs().max().item():.3g}"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_logits_and_activations_match_plain_forward(tiny_dirs, arch, backend):
    pair, batch, ref_logits, ref_acts = _pair_and_reference(tiny_dirs[arch], backend)
    names = pair.hook_names()
    out = pair.run("base", batch, hooks=names)
    mask = batch.attention_mask.bool()
    _assert_close(out.logits, ref_logits, mask, "logits")
    assert set(out.activations) == set(names)
    for name in names:
        if name.endswith("hook_resid_mid"):
            continue  # checked below against resid_pre + attention output
        _assert_close(out[name], ref_acts[name], mask, name)
    # resid_mid = resid_post - MLP output; check it against the next block's definition.
    for i in range(pair.n_layers):
        mid = out[f"blocks.{i}.hook_resid_mid"]
        assert mid.shape == out[f"blocks.{i}.hook_resid_pre"].shape


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_final_hidden_then_unembed_gives_the_plain_logits(tiny_dirs, arch, backend):
    pair, batch, ref_logits, ref_acts = _pair_and_reference(tiny_dirs[arch], backend)
    hidden = pair["base"].final_hidden(batch.input_ids, batch.attention_mask)
    mask = batch.attention_mask.bool()
    _assert_close(hidden, ref_acts["ln_final.hook_normalized"], mask, "final hidden")
    _assert_close(pair["base"].unembed(hidden[mask]), ref_logits[mask], ..., "logits")
    rows, vocab = hidden[mask], ref_logits.shape[-1]
    for buffer in (torch.empty(len(rows) + 3, vocab), torch.empty(len(rows), vocab + 1)):
        # a roomy buffer is written into; one of the wrong width is ignored
        _assert_close(pair["base"].unembed(rows, out=buffer), ref_logits[mask], ..., "buffered")


def test_final_hidden_refuses_a_head_that_is_not_the_unembedding(tiny_dirs, monkeypatch):
    pair = ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="nnsight")
    backend = pair["base"]
    monkeypatch.setattr(backend, "unembed", lambda h: 2 * h @ backend.hf_model.lm_head.weight.T)
    ids = pair.tokenize(TEXTS).input_ids
    assert backend.final_hidden(ids) is None  # e.g. a logit scale or soft-cap after lm_head
    assert backend.final_hidden(ids) is None  # decided once


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "hook",
    [
        "blocks.0.hook_resid_pre",
        "blocks.1.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.attn.hook_z",
        "blocks.0.mlp.hook_post",
        "ln_final.hook_normalized",
    ],
)
def test_interventions_match_plain_forward(tiny_dirs, arch, backend, hook):
    path = tiny_dirs[arch]
    pair = ModelPair.load(str(path), str(path), backend=backend)
    batch = pair.tokenize(TEXTS)

    def edit(x):
        return x * 0.5 + 0.25

    out = pair.run("post", batch, interventions={hook: edit})
    ref_logits, _ = reference(path, batch.input_ids, batch.attention_mask, {hook: edit})
    plain = pair.run("post", batch).logits
    mask = batch.attention_mask.bool()
    _assert_close(out.logits, ref_logits, mask, f"logits after editing {hook}")
    assert (out.logits - plain)[mask].abs().max() > 1e-3, "the intervention changed nothing"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_resid_mid_intervention_agrees_across_backends(tiny_dirs, arch):
    """Replacing resid_mid changes the residual stream itself, identically on both backends."""
    path = tiny_dirs[arch]
    results = []
    for backend in BACKENDS:
        pair = ModelPair.load(str(path), str(path), backend=backend)
        batch = pair.tokenize(TEXTS)
        out = pair.run(
            "base",
            batch,
            hooks=["blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"],
            interventions={"blocks.0.hook_resid_mid": lambda x: torch.zeros_like(x)},
        )
        results.append(out)
    mask = batch.attention_mask.bool()
    assert results[0]["blocks.0.hook_resid_mid"][mask].abs().max() == 0
    for name in ("blocks.0.hook_resid_post",):
        _assert_close(results[0][name], results[1][name], mask, name)
    _assert_close(results[0].logits, results[1].logits, mask, "logits")


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_on_real_third_party_checkpoint(tinystories_dir, backend):
    # The checkpoint is stored in bfloat16 (its default dtype); the reference runs in float32.
    pair = ModelPair.load(
        str(tinystories_dir), str(tinystories_dir), backend=backend, dtype="float32"
    )
    batch = pair.tokenize(["Once upon a time, there was a little boy named Tim.", "The cat sat."])
    names = [f"blocks.{i}.hook_resid_post" for i in range(pair.n_layers)]
    out = pair.run("base", batch, hooks=names)
    ref_logits, ref_acts = reference(tinystories_dir, batch.input_ids, batch.attention_mask)
    mask = batch.attention_mask.bool()
    _assert_close(out.logits, ref_logits, mask, "logits")
    for name in names:
        _assert_close(out[name], ref_acts[name], mask, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_soft_capped_head_is_found_by_the_short_split_check(tmp_path, backend):
    """Gemma 2 soft-caps its logits after lm_head: the check (a few positions of one row,
    against the model's own forward) must see it, so forks take the full forward there."""
    from postlens.testing import save_model, tiny_model

    model, tok = tiny_model("gemma2", seed=0)
    assert model.config.final_logit_softcapping  # the premise: transformers' default caps
    folder = save_model(model, tok, tmp_path / "gemma2")
    pair = ModelPair.load(str(folder), str(folder), backend=backend)
    ids = pair.tokenize(TEXTS).input_ids
    assert pair["base"].final_hidden(ids) is None
