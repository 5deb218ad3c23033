"""Synthetic checkpoints at real shapes, built from configs (nothing is downloaded).

``qwen0.5b``: a Qwen2-0.5B-shaped Llama (hidden 896, 24 layers, 14 heads / 2 KV heads,
intermediate 4864, vocabulary 151936, tied embeddings; 494M parameters); ``100m``: the same
vocabulary on a narrower, shallower body (hidden 512, 12 layers, 8 / 2 heads, intermediate
1536; 114M parameters); ``eighth``: a Llama at one eighth of Llama-3-8B's width with a 50k
vocabulary (hidden 512, 8 layers, 8 / 2 heads, intermediate 1792; 53M parameters), the size
where fixed costs and the eager vocabulary reductions dominate. Both are saved in bfloat16 safetensors shards with a character-level
tokenizer padded to the vocabulary (`postlens.testing.build_tokenizer`). The post model is the
base plus seeded noise (``NOISE`` × each tensor's standard deviation), so that every figure has
something to measure; random weights are fine for speed.

Example:
    >>> sorted(SHAPES), SHAPES["qwen0.5b"]["num_hidden_layers"]
    (['100m', 'eighth', 'qwen0.5b', 'tiny'], 24)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VOCAB = 151_936
NOISE = 0.05
SHAPES: dict[str, dict[str, Any]] = {
    "qwen0.5b": dict(
        hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
        intermediate_size=4864,
    ),
    "100m": dict(
        hidden_size=512, num_hidden_layers=12, num_attention_heads=8, num_key_value_heads=2,
        intermediate_size=1536,
    ),
    "eighth": dict(
        hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
        intermediate_size=1792, vocab_size=50_000,
    ),
    "tiny": dict(  # for a smoke test of the benchmark itself
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128,
    ),
}  # fmt: skip


def build_pair(shape: str, root: Path) -> tuple[str, str]:
    """Save the base and post checkpoints of `shape` under `root` (reused when present)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from postlens.testing import build_tokenizer, save_model

    paths = (root / f"{shape}-base", root / f"{shape}-post")
    if all((p / "config.json").is_file() for p in paths):
        return str(paths[0]), str(paths[1])
    body = dict(SHAPES[shape])
    vocab = body.pop("vocab_size", VOCAB)
    tok = build_tokenizer()
    tok = build_tokenizer(tuple(f"<t{i}>" for i in range(vocab - len(tok))))
    cfg = LlamaConfig(
        vocab_size=vocab, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, rope_theta=1_000_000.0, **body,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
    save_model(model, tok, paths[0])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(NOISE * p.float().std() * torch.randn(p.shape, generator=g).to(p.dtype))
    save_model(model, tok, paths[1])
    return str(paths[0]), str(paths[1])


def n_params(path: str) -> int:
    """Parameters of a saved checkpoint, from its safetensors headers (tied tensors once)."""
    from postlens.models.safetensors_header import read_header

    total = 0
    for file in sorted(Path(path).glob("*.safetensors")):
        for info in read_header(file).values():
            n = 1
            for d in info.shape:
                n *= d
            total += n
    return total
