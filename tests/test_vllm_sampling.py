"""pass@k through vLLM: what postlens hands the engine and what it makes of the answer.

vLLM needs a GPU, so these tests put a stand-in ``vllm`` module in its place that records its
calls and answers with fixed ids, following vLLM 0.33's offline API (``LLM(model, **engine
args).generate(TokensPrompt list, SamplingParams, use_tqdm=, lora_request=)``, outputs with
``.outputs[i].token_ids``). They check the plumbing against postlens's own sampler: the same
prompt ids, stop ids and seeds, adapters served as vLLM LoRA requests, completions cut at the
first stop id, and pass@k computed from them exactly.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from dataclasses import dataclass, field

import pytest
import torch

import postlens as pl
from postlens.diffs.passk.compute import PassKConfig
from postlens.errors import NotSupportedError
from postlens.sampling.generation import prompt_ids, sampling_stop_ids


@dataclass
class FakeEngine:
    """Records every engine built and every generate call; answers each prompt with `reply`."""

    reply: list[int] = field(default_factory=list)
    built: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)


def _fake_vllm(engine: FakeEngine) -> types.ModuleType:
    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class LLM:
        def __init__(self, model, **kwargs):
            engine.built.append({"model": model, **kwargs})

        def generate(self, prompts, params, use_tqdm=True, lora_request=None):
            engine.calls.append({"prompts": prompts, "params": params, "lora": lora_request})
            out = types.SimpleNamespace(token_ids=list(engine.reply), text=None)
            return [types.SimpleNamespace(outputs=[out] * params.n) for _ in prompts]

    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # a TypedDict in vLLM: a dict with prompt_token_ids
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, id_, path: ("lora", name, id_, path)
    vllm.LLM, vllm.SamplingParams, vllm.inputs, vllm.lora = LLM, SamplingParams, inputs, lora
    lora.request = request
    return vllm


@pytest.fixture
def engine(monkeypatch):
    engine = FakeEngine()
    vllm = _fake_vllm(engine)
    for name, module in {
        "vllm": vllm,
        "vllm.inputs": vllm.inputs,
        "vllm.lora": vllm.lora,
        "vllm.lora.request": vllm.lora.request,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return engine


@pytest.fixture
def gpu(monkeypatch, engine):
    """As if a GPU were visible to vLLM (postlens's own models still load on the CPU)."""
    import postlens.sampling.vllm as vs

    monkeypatch.setattr(vs, "vllm_unavailable", lambda: None)
    return engine


def test_without_vllm_the_engine_is_refused_before_loading():
    with pytest.raises(NotSupportedError, match=r"pip install 'postlens\[vllm\]'"):
        PassKConfig(engine="vllm")


def test_without_a_gpu_vllm_is_refused(engine):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(NotSupportedError, match="no CUDA device"):
        PassKConfig(engine="vllm")


def test_passk_through_vllm_feeds_postlens_ids_and_scores_its_answers(gpu):
    engine = gpu
    fam = pl.load("organism:base", rl="organism:rl")
    prompts = [p.prompt for p in fam.problems(limit=3)]
    tok = fam.tokenizer
    stop = sampling_stop_ids(fam["rl"].post, tok)
    # Every prompt is answered "answer 150" (right for the first problem only: 137+13), then a
    # stop id, then ids past it that must be cut.
    assert _sum(prompts[0]) == 150 and all(_sum(p) != 150 for p in prompts[1:])
    engine.reply = tok("answer 150", add_special_tokens=False).input_ids + [stop[0], 7, 7]
    cfg = PassKConfig(
        engine="vllm",
        sample=pl.SampleConfig(n=4, limit=3, batch_size=256, seed=5, max_new_tokens=20),
    )
    result = fam.passk(None, cfg)

    assert [b["model"] for b in engine.built] == [
        str(fam.first.base_spec.location),
        str(fam["rl"].post_spec.location),
    ]
    assert engine.built[0]["skip_tokenizer_init"] and engine.built[0]["seed"] == 5
    call = engine.calls[1]
    assert [p["prompt_token_ids"] for p in call["prompts"]] == [prompt_ids(tok, p) for p in prompts]
    params = call["params"]
    assert (params.n, params.max_tokens, params.seed, params.temperature) == (4, 20, 5, 1.0)
    assert params.stop_token_ids == stop and params.detokenize is False
    # Only the first problem passes, all 4 of its samples (the engine answers them alike).
    assert result.correct["rl"] == result.correct["base"] == [4, 0, 0]
    assert result.curves["rl"][1] == pytest.approx(1 / 3)


def _sum(prompt: str) -> int:
    a, b = prompt.split("Q:")[1].split("=")[0].split("+")
    return int(a) + int(b)


def test_an_adapter_child_is_a_lora_request_on_the_base(gpu):
    engine = gpu
    fam = pl.load("organism:base", rl="organism:rl-lora")
    engine.reply = [2]
    fam.passk(
        None, PassKConfig(engine="vllm", sample=pl.SampleConfig(n=1, limit=1, batch_size=256))
    )
    base, child = engine.built
    assert child["model"] == base["model"] == str(fam.first.base_spec.location)
    assert child["enable_lora"] and child["max_lora_rank"] == 8
    assert engine.calls[1]["lora"] == ("lora", "rl", 1, fam["rl"].post_spec.location)
    assert "enable_lora" not in base and engine.calls[0]["lora"] is None
