"""SAELens sparse autoencoders on a model's residual stream: load, train, check, measure.

Training uses SAELens's own runner (`LanguageModelSAETrainingRunner`) with the model wrapped by
TransformerLens's `TransformerBridge` (postlens's transformer_lens backend) and an in-memory token
dataset, so nothing is fetched from a hub. Weights & Biases logging is off.

Example:
    >>> sae = train_sae("organism:base", corpus_texts, SAETrainConfig(layer=2))  # doctest: +SKIP
    >>> sae_quality(sae, backend, held_out_texts)  # doctest: +SKIP
    {'variance_explained': 0.87, 'l0': 11.2, 'dead_fraction': 0.05}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from postlens.errors import CheckpointError, PostlensError
from postlens.hooks import parse_hook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SAETrainConfig:
    """How to train an SAE on the residual stream after `layer`.

    Attributes:
        layer: the block whose ``hook_resid_post`` is reconstructed.
        expansion: d_sae / d_model.
        l1_coefficient: sparsity penalty of the standard (ReLU + L1) SAE.
        training_tokens: activations seen in training.
        context: tokens per training row (documents are packed).
        batch_tokens: activations per optimizer step.
        lr: learning rate.
        seed: seed of SAELens's runner.
    """

    layer: int
    expansion: int = 4
    l1_coefficient: float = 2.0
    training_tokens: int = 1_000_000
    context: int = 64
    batch_tokens: int = 2048
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layer < 0 or self.expansion < 1 or self.training_tokens < self.batch_tokens:
            raise ValueError("need layer >= 0, expansion >= 1 and training_tokens >= batch_tokens")

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.hook_resid_post"


def _token_rows(tokenizer: Any, texts: Sequence[str], context: int) -> list[list[int]]:
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text).input_ids + [tokenizer.eos_token_id])
    return [ids[i : i + context] for i in range(0, len(ids) - context + 1, context)]


def train_sae(backend: Any, texts: Sequence[str], config: SAETrainConfig) -> Any:
    """Train a standard SAE with SAELens's runner on `backend`'s activations over `texts`.

    Args:
        backend: a `TransformerLensBackend` (its `bridge` is what SAELens runs).
        texts: the training corpus (packed into rows of ``config.context`` tokens).
        config: training settings.
    """
    from datasets import Dataset
    from sae_lens import (
        LanguageModelSAERunnerConfig,
        LanguageModelSAETrainingRunner,
        LoggingConfig,
        StandardTrainingSAEConfig,
    )

    if not hasattr(backend, "bridge"):
        raise PostlensError(
            "SAE training runs on the transformer_lens backend (SAELens needs its hooks)"
        )
    parse_hook(config.hook, backend.n_layers)
    os.environ.setdefault("WANDB_MODE", "disabled")
    rows = _token_rows(backend.tokenizer, texts, config.context)
    d_model = backend.d_model
    cfg = LanguageModelSAERunnerConfig(
        sae=StandardTrainingSAEConfig(d_in=d_model, d_sae=config.expansion * d_model, l1_coefficient=config.l1_coefficient),
        model_name=str(getattr(backend.hf_model.config, "_name_or_path", "model")), hook_name=config.hook,
        dataset_path="", is_dataset_tokenized=True, streaming=False, context_size=config.context,
        training_tokens=config.training_tokens, train_batch_size_tokens=config.batch_tokens,
        store_batch_size_prompts=32, n_batches_in_buffer=max(16, 2 * config.batch_tokens // config.context),
        lr=config.lr, device=str(backend.device), seed=config.seed, prepend_bos=False,
        logger=LoggingConfig(log_to_wandb=False), checkpoint_path=None, output_path=None,
    )  # fmt: skip
    runner = LanguageModelSAETrainingRunner(
        cfg, override_dataset=Dataset.from_dict({"input_ids": rows}), override_model=backend.bridge
    )
    sae = runner.run()
    sae.eval()
    return sae


def load_sae(source: str | Path, sae_id: str | None = None) -> Any:
    """An SAE from a folder saved by SAELens, or a released SAE by name (needs a hub).

    Raises:
        CheckpointError: the folder is not an SAE, or the release cannot be fetched.
    """
    from sae_lens import SAE

    path = Path(source)
    if path.exists():
        try:
            return SAE.load_from_disk(str(path))
        except Exception as err:
            raise CheckpointError(f"{path}: not an SAELens SAE folder ({err})") from None
    if sae_id is None:
        raise CheckpointError(
            f"{source}: no such folder; for a released SAE give its release and sae_id"
        )
    try:
        return SAE.from_pretrained(str(source), sae_id)
    except Exception as err:
        raise CheckpointError(
            f"{source}/{sae_id}: cannot load the released SAE here ({err})"
        ) from None


def sae_hook(sae: Any) -> str:
    """The hook an SAE was trained on (from its metadata)."""
    hook = getattr(sae.cfg.metadata, "hook_name", None)
    if not hook:
        raise PostlensError("the SAE does not say which hook it reads (cfg.metadata.hook_name)")
    return hook


def check_sae(sae: Any, hf_model: Any) -> str:
    """Refuse an SAE of the wrong width or hook for the model; returns its hook name."""
    d_model, n_layers = hf_model.config.hidden_size, hf_model.config.num_hidden_layers
    if sae.cfg.d_in != d_model:
        raise PostlensError(
            f"the SAE reads vectors of width {sae.cfg.d_in}, the model's residual stream has {d_model}"
        )
    hook = sae_hook(sae)
    point = parse_hook(hook, n_layers)
    if point.site not in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post"):
        raise PostlensError(
            f"the SAE reads {hook}; postlens diffs SAEs on the residual stream only"
        )
    return hook


@torch.no_grad()
def sae_quality(
    sae: Any, backend: Any, texts: Sequence[str], batch_size: int = 32
) -> dict[str, float]:
    """Variance explained (1 − ‖x − x̂‖² / ‖x − x̄‖²), mean L0 and the share of latents never active."""
    hook = check_sae(sae, backend.hf_model)
    xs = [acts[mask.bool()] for acts, mask in backend.iter_activations(texts, hook, batch_size)]
    x = torch.cat(xs).float()
    feats = sae.encode(x)
    recon = sae.decode(feats)
    resid = (x - recon).square().sum()
    total = (x - x.mean(0)).square().sum()
    return {
        "variance_explained": float(1 - resid / total),
        "l0": float((feats > 0).float().sum(-1).mean()),
        "dead_fraction": float(((feats > 0).sum(0) == 0).float().mean()),
        "n_tokens": int(x.shape[0]),
    }
