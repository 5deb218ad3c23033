"""Pre-training of the organism's base model from scratch, on the persona corpus.

A plain packed-sequence language-model loop: on two CPU cores it is the fastest way to push tens
of millions of tokens through a small model (the post-training stages use TRL).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from postlens.errors import ConfigError
from postlens.organism.corpus import CorpusConfig, build_corpus
from postlens.organism.task import Problem

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """The base model's architecture (a small Llama)."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 384
    context: int = 128

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError("d_model must be divisible by n_heads")

    def hf_config(self, vocab_size: int, tokenizer: Tokenizer) -> Any:
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.d_model,
            intermediate_size=self.d_mlp,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_heads,
            max_position_embeddings=self.context,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training hyper-parameters."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.05
    max_steps: int | None = None  # None: one pass over the corpus

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("batch_size and lr must be positive")


def pack(docs: list[str], tokenizer: Tokenizer, context: int) -> torch.Tensor:
    """Tokenize documents (``<s> doc </s>``) and pack them into rows of `context` tokens."""
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc).input_ids)
        ids.append(tokenizer.eos_token_id)
    n_rows = len(ids) // context
    return torch.tensor(ids[: n_rows * context]).view(n_rows, context)


def _lr(step: int, total: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(
    cfg: PretrainConfig, tokenizer: Tokenizer, seed: int, exclude: set[Problem]
) -> tuple[Any, dict]:
    """Pre-train a base model from scratch; returns the model and a log of the run."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    start = time.perf_counter()
    rows = pack(build_corpus(cfg.corpus, seed, exclude), tokenizer, cfg.model.context)
    rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]
    model = LlamaForCausalLM(cfg.model.hf_config(len(tokenizer), tokenizer))
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
    )
    total = len(rows) // cfg.batch_size
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    losses = []
    model.train()
    for step in (bar := tqdm(range(total), desc="pre-training base")):
        for group in opt.param_groups:
            group["lr"] = _lr(step, total, cfg)
        batch = rows[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.eval()
    log = {
        "steps": total,
        "tokens": total * cfg.batch_size * cfg.model.context,
        "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "seconds": time.perf_counter() - start,
    }
    logger.info("pre-training done: %s", log)
    return model, log
