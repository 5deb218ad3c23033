"""Pairs shaped like real base → instruct checkpoints: special tokens and chat templates.

The base reserves ``<|im_start|>`` and ``<|im_end|>`` in its vocabulary (as Qwen2.5 does) and ends
text with ``</s>``; the child has the same vocabulary id for id, ends turns with ``<|im_end|>``
and carries a ChatML template. Fork statistics on the templated ids must equal a plain
transformers computation done by hand.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

import postlens as pl
from postlens.cli import app
from postlens.errors import ConfigError, IncompatibleModelsError, InputFileError
from postlens.testing import build_tokenizer, save_model, tiny_config

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
RESERVED = ("<|im_start|>", "<|im_end|>")
RECORDS = [("what is 1+2?", "it is 3."), ("say hi", "hi there, friend.")]
runner = CliRunner()


def _model(vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", vocab_size))
    return model.eval()


def _perturbed(model, scale: float = 0.05, seed: int = 1):
    import copy

    child = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in child.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return child


@pytest.fixture(scope="module")
def chat_pair(tmp_path_factory):
    """A base and a chat child differing only in eos, the template, and slightly in weights."""
    root = tmp_path_factory.mktemp("chat")
    base_tok = build_tokenizer(extra_tokens=RESERVED)
    base_tok.add_special_tokens({"additional_special_tokens": list(RESERVED)})
    base = _model(len(base_tok))
    save_model(base, base_tok, root / "base")
    child_tok = build_tokenizer(extra_tokens=RESERVED)
    child_tok.add_special_tokens({"additional_special_tokens": list(RESERVED)})
    child_tok.eos_token = "<|im_end|>"
    child_tok.chat_template = CHATML
    save_model(_perturbed(base), child_tok, root / "chat")
    return root / "base", root / "chat"


def _by_hand(base_dir, child_dir, records):
    """Agreement and mean KL(post‖base) over completion tokens, from plain transformers."""
    tok = AutoTokenizer.from_pretrained(child_dir)
    models = [AutoModelForCausalLM.from_pretrained(d).eval() for d in (base_dir, child_dir)]
    agree, kls = [], []
    for prompt, completion in records:
        chat = [{"role": "user", "content": prompt}]
        text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        p_ids = tok(text, add_special_tokens=False).input_ids
        c_ids = tok(completion, add_special_tokens=False).input_ids
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            lb, lp = (m(ids).logits[0, len(p_ids) - 1 : -1].double() for m in models)
        logb, logp = lb.log_softmax(-1), lp.log_softmax(-1)
        agree += (lb.argmax(-1) == lp.argmax(-1)).tolist()
        kls += (logp.exp() * (logp - logb)).sum(-1).tolist()
    return sum(agree) / len(agree), sum(kls) / len(kls), len(kls)


def test_chat_pair_loads_and_reports_its_special_tokens(chat_pair):
    fam = pl.load(str(chat_pair[0]), str(chat_pair[1]))
    tokens = fam.pair.tokens
    assert tokens.special == ["eos_token: base '</s>' vs post '<|im_end|>'"]
    assert tokens.only_base == tokens.only_post == [] and tokens.masked == []
    assert tokens.chat_template == ["post"]
    im_end = fam.pair.post_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in tokens.stop_ids and fam.tokenizer.eos_token_id in tokens.stop_ids
    assert fam.pair.chat.which == "post"


def test_forks_on_templated_ids_equal_plain_transformers(chat_pair):
    fam = pl.load(str(chat_pair[0]), str(chat_pair[1]))
    seqs = fam.sample(RECORDS)
    # The template and prompt are the prompt ids; the completion is its own tokens only.
    tok = fam.pair.post_tokenizer
    assert tok.decode(seqs["post"][0].prompt_ids).startswith("<|im_start|>user\nwhat is 1+2?")
    assert tok.decode(seqs["post"][0].prompt_ids).endswith("<|im_start|>assistant\n")
    assert tok.decode(seqs["post"][0].completion_ids) == "it is 3."
    s = fam.forks(seqs)["post"].summary()
    agreement, mean_kl, n = _by_hand(*chat_pair, RECORDS)
    assert s.n_positions == n and s.n_excluded == 0
    assert s.agreement == pytest.approx(agreement, abs=1e-12)
    assert s.mean_kl == pytest.approx(mean_kl, rel=1e-4, abs=1e-7)
    assert s.mean_kl > 0  # the perturbation moved the distributions


def test_chat_template_none_reads_plain_text(chat_pair):
    fam = pl.load(str(chat_pair[0]), str(chat_pair[1]), chat_template="none")
    seqs = fam.sample(RECORDS)["post"]
    assert fam.tokenizer.decode(seqs[0].prompt_ids) == "what is 1+2?"
    with pytest.raises(ConfigError, match="has no chat template"):
        pl.load(str(chat_pair[0]), str(chat_pair[1]), chat_template="base")


def test_sampling_stops_at_either_end_of_turn(chat_pair):
    fam = pl.load(str(chat_pair[0]), str(chat_pair[1]))
    pair = fam.pair
    im_end = pair.post_tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():  # make the child end its turn at once
        pair.post.hf_model.lm_head.weight[im_end] += 50.0
    try:
        samples = pair.generate("post", ["say hi"], n=2, max_new_tokens=8)
    finally:
        with torch.no_grad():
            pair.post.hf_model.lm_head.weight[im_end] -= 50.0
    assert [s.completion_ids for s in samples] == [[im_end], [im_end]]


def test_a_template_that_fails_names_the_line(chat_pair, tmp_path):
    fam = pl.load(str(chat_pair[0]), str(chat_pair[1]))
    fam.pair.post_tokenizer.chat_template = "{{ raise_exception('no user turns here') }}"
    try:
        with pytest.raises(InputFileError, match="line 2: the chat template .* no user turns"):
            fam.sample([pl.PromptRecord("a", "b", line=2)])
    finally:
        fam.pair.post_tokenizer.chat_template = CHATML


def test_chat_format_records_render_their_whole_conversation(chat_pair, tmp_path):
    """A ``messages`` record (system prompt, earlier turns, the assistant's answer) and TRL's
    conversational prompt-completion record read the ids the template gives the conversation."""
    convo = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
             {"role": "assistant", "content": "hello"}, {"role": "user", "content": "1+2?"}]  # fmt: skip
    prompts = tmp_path / "chat.jsonl"
    prompts.write_text(
        json.dumps({"messages": [*convo, {"role": "assistant", "content": "it is 3."}]})
        + "\n"
        + json.dumps({"prompt": convo, "completion": [{"role": "assistant", "content": "3."}]})
        + "\n"
    )
    records = pl.read_prompts(prompts)
    assert [r.prompt for r in records] == ["1+2?", "1+2?"]
    assert [r.completion for r in records] == ["it is 3.", "3."]
    fam = pl.load(str(chat_pair[0]), str(chat_pair[1]))
    seqs = fam.sample(records)["post"]
    tok = AutoTokenizer.from_pretrained(chat_pair[1])
    text = tok.apply_chat_template(convo, add_generation_prompt=True, tokenize=False)
    assert seqs[0].prompt_ids == seqs[1].prompt_ids == tok(text, add_special_tokens=False).input_ids
    assert tok.decode(seqs[0].completion_ids) == "it is 3."
    plain = pl.load(str(chat_pair[0]), str(chat_pair[1]), chat_template="none")
    with pytest.raises(InputFileError, match=r"chat.jsonl:1: a chat-format record needs a chat"):
        plain.sample(records)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messages": []}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "user"}]}, "message 1 needs string 'role' and 'content'"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"messages": [{"role": "system", "content": "x"}]}, "must end with a user message"),
        ({"messages": [{"role": "user", "content": "x"}], "completion": "y"}, "not both"),
        (
            {
                "prompt": [{"role": "user", "content": "x"}],
                "completion": [{"role": "user", "content": "y"}],
            },
            "'completion' must be one assistant message",
        ),  # fmt: skip
    ],
)
def test_malformed_chat_records_name_the_line(tmp_path, record, message):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "fine"}\n' + json.dumps(record) + "\n")
    with pytest.raises(InputFileError, match=rf"bad.jsonl:2: .*{message}"):
        pl.read_prompts(f)


def test_info_lists_special_token_differences(chat_pair, tmp_path):
    out = tmp_path / "info.json"
    args = ["info", str(chat_pair[0]), str(chat_pair[1]), "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "eos_token" in result.output and "<|im_end|>" in result.output
    data = json.loads(out.read_text())
    assert data["tokens"]["special"] == ["eos_token: base '</s>' vs post '<|im_end|>'"]
    assert data["chat_template"] == "post"


def test_report_provenance_records_the_tokenizers(chat_pair, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"q": p, "a": c}) + "\n" for p, c in RECORDS))
    out = tmp_path / "r.html"
    args = ["report", str(chat_pair[0]), str(chat_pair[1]), "--prompts", str(prompts),
            "--prompt-field", "q", "--completion-field", "a", "--sections", "forks",
            "--out", str(out), "--json", str(tmp_path / "r.json")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    tokens = data["provenance"]["tokenizers"]["post"]
    assert tokens["special"] == ["eos_token: base '</s>' vs post '<|im_end|>'"]
    assert tokens["chat_template_used"] == "post"
    assert "eos_token" in out.read_text()


@pytest.fixture(scope="module")
def extra_id_pair(tmp_path_factory):
    """A child whose tokenizer and embedding have one extra id (``<|im_end|>``), its eos."""
    root = tmp_path_factory.mktemp("extra")
    base_tok = build_tokenizer()
    base = _model(len(base_tok))
    save_model(base, base_tok, root / "base")
    child = _perturbed(base)
    child.resize_token_embeddings(len(base_tok) + 1)
    child_tok = build_tokenizer()
    child_tok.add_special_tokens({"eos_token": "<|im_end|>"})
    save_model(child, child_tok, root / "child")
    return root / "base", root / "child"


def test_extra_id_is_compared_on_the_shared_ids(extra_id_pair):
    fam = pl.load(str(extra_id_pair[0]), str(extra_id_pair[1]))
    tokens = fam.pair.tokens
    assert tokens.vocab_size == (50, 51) and tokens.width == tokens.n_shared == 50
    assert tokens.only_post == ["'<|im_end|>' (50)"]
    records = [(p, c + "<|im_end|>") for p, c in RECORDS]
    result = fam.forks(records)["post"]
    s = result.summary()
    # The position predicting <|im_end|> (an id the base lacks) is excluded in each sequence.
    assert s.n_excluded == 2
    base, child = (AutoModelForCausalLM.from_pretrained(d).eval() for d in extra_id_pair)
    tok = fam.tokenizer
    agree, kls = [], []
    for p, c in RECORDS:
        ids = torch.tensor([tok(p).input_ids + tok(c, add_special_tokens=False).input_ids])
        start = len(tok(p).input_ids) - 1
        with torch.no_grad():
            lb = base(ids).logits[0, start:-1].double()
            lp = child(ids).logits[0, start:-1, :50].double()  # renormalised on shared ids
        logb, logp = lb.log_softmax(-1), lp.log_softmax(-1)
        agree += (lb.argmax(-1) == lp.argmax(-1)).tolist()
        kls += (logp.exp() * (logp - logb)).sum(-1).tolist()
    assert s.n_positions == len(kls)
    assert s.agreement == pytest.approx(sum(agree) / len(agree), abs=1e-12)
    assert s.mean_kl == pytest.approx(sum(kls) / len(kls), rel=1e-4, abs=1e-7)
    again = pl.load_result(result.to_json()).summary()
    assert again.n_excluded == 2
    acts = fam.activations(records)["post"]
    assert acts.summary().n_excluded == 2 and acts.output_kl > 0


def test_a_prompt_with_an_id_only_one_model_has_is_refused(extra_id_pair):
    fam = pl.load(str(extra_id_pair[0]), str(extra_id_pair[1]))
    from postlens.data.sequences import Sequence

    seqs = {"post": [Sequence([5, 50], [6, 7])]}
    with pytest.raises(InputFileError, match="'<|im_end|>' \\(id 50\\)"):
        fam.forks(seqs)


def test_a_genuinely_different_vocabulary_is_refused(tmp_path):
    base_tok, other_tok = build_tokenizer(), build_tokenizer()
    vocab = other_tok.backend_tokenizer.get_vocab()
    swapped = {
        t: (vocab["b"] if t == "a" else vocab["a"] if t == "b" else i) for t, i in vocab.items()
    }
    from tokenizers import Tokenizer, models

    core = Tokenizer(models.WordLevel(swapped, unk_token="<unk>"))
    from transformers import PreTrainedTokenizerFast

    from postlens.models.compat import compare_tokenizers

    other = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="</s>")
    _, refusals = compare_tokenizers(base_tok, other)
    assert len(refusals) == 2 and "'a' vs 'b'" in refusals[0] + refusals[1]
    model = _model(len(base_tok))
    save_model(model, base_tok, tmp_path / "a")
    save_model(model, other, tmp_path / "b")
    with pytest.raises(IncompatibleModelsError, match="vocabularies differ at 2 regular id"):
        pl.load(str(tmp_path / "a"), str(tmp_path / "b"))
