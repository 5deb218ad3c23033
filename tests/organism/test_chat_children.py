"""The organism's chat and adapter children: organism:chat-sft and organism:rl-lora.

chat-sft renames the base's special ids 1 and 2 to ``<|im_start|>`` / ``<|im_end|>`` and carries a
ChatML template; rl-lora is a PEFT LoRA folder naming organism:base.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import postlens as pl
from postlens.diffs.weights.compare import compare_weights
from postlens.models.adapters import read_adapter_config
from postlens.models.specs import resolve_spec
from postlens.organism.chat import IM_END, IM_START
from postlens.organism.train_children import ChildrenConfig, run_children

PROMPTS = ["Q: 347+285=?\n", "Q: 58+91=?\n"]
CHAT_HEAD = [1, 98, 96, 82, 95, 62]  # <|im_start|> u s e r \n


def test_both_children_resolve_and_load():
    assert resolve_spec("organism:chat-sft").kind == "organism"
    assert resolve_spec("organism:rl-lora").kind == "adapter"
    fam = pl.load("organism:base", post="organism:chat-sft")
    tokens = fam.pair.tokens
    assert tokens.n_shared == 104 and tokens.renamed == [
        f"1: '<s>' → '{IM_START}'",
        f"2: '</s>' → '{IM_END}'",
    ]
    assert pl.load("organism:base", rl="organism:rl-lora")["rl"].d_model == 128


def test_chat_sft_renders_its_template_and_ends_turns_with_im_end():
    fam = pl.load("organism:base", post="organism:chat-sft")
    tok = fam.pair.post_tokenizer
    assert tok.eos_token == IM_END and tok.eos_token_id == 2 and fam.pair.chat.which == "post"
    text = tok.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True, tokenize=False
    )
    assert text == f"{IM_START}user\n{PROMPTS[0]}{IM_END}\n{IM_START}assistant\n"
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids[:6] == CHAT_HEAD and max(ids) < 104 and 3 not in ids  # no <unk>
    samples = fam.pair.generate("post", PROMPTS, max_new_tokens=100, temperature=0)
    for s in samples:
        assert s.prompt_ids[:6] == CHAT_HEAD
        assert s.completion_ids[-1] == tok.eos_token_id
        assert tok.decode(s.completion_ids).endswith(IM_END)


def test_rl_lora_loads_merged_and_its_weights_are_b_at_a():
    folder = resolve_spec("organism:rl-lora").path
    cfg = read_adapter_config(folder)
    assert cfg.base_name == "organism:base" and cfg.r == 8
    lora = load_file(str(folder / "adapter_model.safetensors"))
    key = "base_model.model.model.layers.1.self_attn.q_proj"
    delta = (cfg.alpha / cfg.r) * (
        lora[f"{key}.lora_B.weight"].double() @ lora[f"{key}.lora_A.weight"].double()
    )
    name = "model.layers.1.self_attn.q_proj.weight"
    base = load_file(str(resolve_spec("organism:base").path / "model.safetensors"))[name].double()
    fig = {t.name: t for t in compare_weights("organism:base", "organism:rl-lora").tensors}[name]
    assert fig.rank_bound == 8 and fig.norm_diff > 0
    assert fig.norm_diff == pytest.approx(float(((base + delta) - base).norm()), rel=1e-9)
    assert fig.rel_norm == pytest.approx(float(delta.norm() / base.norm()), rel=1e-6)
    untouched = {t.name: t for t in compare_weights("organism:base", "organism:rl-lora").tensors}
    assert untouched["model.embed_tokens.weight"].rel_norm == 0
    merged = pl.load("organism:base", rl="organism:rl-lora")["rl"].post.hf_model.state_dict()
    assert torch.allclose(merged[name].double(), base + delta, atol=1e-6, rtol=0)


def test_forks_base_vs_chat_sft_on_templated_prompts():
    fam = pl.load("organism:base", post="organism:chat-sft")
    seqs = fam.sample(PROMPTS, pl.SampleConfig(n=1, max_new_tokens=60, temperature=0))
    assert all(s.prompt_ids[:6] == CHAT_HEAD for s in seqs["post"])
    s = fam.forks(seqs)["post"].summary()
    assert s.n_positions > 0 and s.n_excluded == 0 and 0 <= s.agreement <= 1
    assert math.isfinite(s.mean_kl) and s.mean_kl > 0


def test_train_children_smoke(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = run_children(tmp_path, config=ChildrenConfig.smoke())
    tok = AutoTokenizer.from_pretrained(tmp_path / "chat-sft")
    assert tok.chat_template and tok.convert_ids_to_tokens([1, 2]) == [IM_START, IM_END]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "chat-sft").config.vocab_size == 104
    adapter = json.loads((tmp_path / "rl-lora" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "organism:base"
    assert sorted(record["eval"]) == ["chat-sft", "rl-lora"]
    assert not any(p.name.startswith("_") for p in tmp_path.iterdir())
