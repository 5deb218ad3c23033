"""ModelPair: loading, comparability checks with exact messages, tokenization, generation."""

from __future__ import annotations

import pytest
import torch

from postlens import ModelPair
from postlens.errors import CheckpointError, IncompatibleModelsError, PostlensError, SpecError
from postlens.hooks import HookNameError
from postlens.testing import build_tokenizer, save_model, save_tiny_model, tiny_model


def test_different_layer_counts_are_named(tmp_path, tiny_dirs):
    deeper = save_tiny_model(tmp_path / "deep", arch="llama", num_hidden_layers=3)
    with pytest.raises(IncompatibleModelsError, match=r"layer count .*base 2 vs post 3"):
        ModelPair.load(str(tiny_dirs["llama"]), str(deeper))


def test_different_families_are_named(tiny_dirs):
    with pytest.raises(IncompatibleModelsError, match=r"model_type\): base llama vs post gpt2"):
        ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["gpt2"]))


def test_mismatched_vocabularies_are_compared_entry_by_entry(tmp_path, tiny_dirs):
    """Same vocabulary size, different tokens: the size alone would not catch it."""
    model, _ = tiny_model("llama")
    tok = build_tokenizer(extra_tokens=("<careful>",))
    # Drop the last character so the size matches the fixture's vocabulary.
    vocab = dict(tok.get_vocab())
    assert len(vocab) == len(build_tokenizer()) + 1
    other = save_model(model, _swap_token(build_tokenizer(), "z", "<careful>"), tmp_path / "v")
    # The same id with another string in the regular vocabulary: refused, the id named.
    with pytest.raises(
        IncompatibleModelsError, match=r"differ at 1 regular id.*'z' vs '<careful>'"
    ):
        ModelPair.load(str(tiny_dirs["llama"]), str(other))


def _swap_token(tok, old, new):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = tok.get_vocab()
    vocab[new] = vocab.pop(old)
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def test_folder_without_weights(tmp_path, tiny_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((tiny_dirs["llama"] / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"no weights found"):
        ModelPair.load(str(tiny_dirs["llama"]), str(empty))


def test_corrupted_safetensors_names_the_file(tmp_path, tiny_dirs):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dirs["llama"], bad)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors: truncated"):
        ModelPair.load(str(tiny_dirs["llama"]), str(bad))
    weights.write_bytes(data[:8] + b"{not json" + data[17:])
    with pytest.raises(CheckpointError, match=r"model.safetensors: corrupted safetensors header"):
        ModelPair.load(str(tiny_dirs["llama"]), str(bad))


def test_unknown_spec_and_backend(tiny_dirs):
    with pytest.raises(SpecError, match=r"unknown model spec './nowhere'"):
        ModelPair.load("./nowhere", str(tiny_dirs["llama"]))
    with pytest.raises(SpecError, match=r"unknown organism 'nope'"):
        ModelPair.load("organism:nope", str(tiny_dirs["llama"]))
    with pytest.raises(PostlensError, match=r"unknown backend 'jax'"):
        ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="jax")


def test_remote_needs_credentials(tiny_dirs, monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    with pytest.raises(PostlensError, match=r"NDIF credentials"):
        ModelPair.load(
            str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="nnsight", remote=True
        )


def test_unknown_hook_is_a_clear_error(tiny_dirs):
    pair = ModelPair.load(str(tiny_dirs["gpt2"]), str(tiny_dirs["gpt2"]), backend="nnsight")
    batch = pair.tokenize(["abc"])
    with pytest.raises(HookNameError, match=r"layer 7 out of range \(model has 2\)"):
        pair.run("base", batch, hooks=["blocks.7.hook_resid_post"])
    with pytest.raises(HookNameError, match=r"unknown hook 'blocks.0.resid'"):
        pair.run("base", batch, hooks=["blocks.0.resid"])


def test_only_requested_activations_are_returned(tiny_dirs):
    pair = ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="nnsight")
    out = pair.run("base", pair.tokenize(["abc", "de"]), hooks=["blocks.1.hook_resid_post"])
    assert list(out.activations) == ["blocks.1.hook_resid_post"]


@pytest.mark.parametrize("backend", ["transformer_lens", "nnsight"])
def test_generation_is_seeded_and_matches_plain_greedy(tiny_dirs, backend):
    from transformers import AutoModelForCausalLM

    path = tiny_dirs["llama"]
    pair = ModelPair.load(str(path), str(path), backend=backend)
    a = pair.generate("post", ["ab", "q: 1"], n=3, max_new_tokens=6, seed=1)
    b = pair.generate("post", ["ab", "q: 1"], n=3, max_new_tokens=6, seed=1)
    assert [s.completion_ids for s in a] == [s.completion_ids for s in b]
    assert [s.prompt for s in a] == ["ab"] * 3 + ["q: 1"] * 3
    greedy = pair.generate("base", ["ab"], n=1, max_new_tokens=6, temperature=0)[0]
    ref = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = torch.tensor([greedy.prompt_ids])
    expected = ref.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)[
        0, ids.shape[1] :
    ]
    assert greedy.completion_ids == expected.tolist()[: len(greedy.completion_ids)]


def test_memory_and_hook_names(tiny_dirs):
    pair = ModelPair.load(str(tiny_dirs["llama"]), str(tiny_dirs["llama"]), backend="nnsight")
    n_params = sum(p.numel() for p in pair.base.hf_model.parameters())
    assert pair.memory_bytes() >= 2 * 4 * n_params
    assert pair.hook_names()[0] == "blocks.0.hook_resid_pre"
    assert pair.hook_names()[-1] == "ln_final.hook_normalized"
    assert len(pair.hook_names()) == 5 * pair.n_layers + 1


def test_family_loads_the_base_once(tmp_path, tiny_dirs):
    other = save_tiny_model(tmp_path / "child", arch="llama", seed=1)
    family = ModelPair.load_family(
        str(tiny_dirs["llama"]), {"sft": str(other), "rl": str(tiny_dirs["llama"])}, "nnsight"
    )
    assert set(family) == {"sft", "rl"}
    assert family["sft"].base is family["rl"].base
    batch = family["sft"].tokenize(["abc"])
    assert not torch.equal(
        family["sft"].run("post", batch).logits, family["rl"].run("post", batch).logits
    )
