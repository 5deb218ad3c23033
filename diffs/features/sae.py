"""SAELens sparse autoencoders on a model's residual stream: load, train, check, measure.

Training (`train_sae`) uses SAELens's own `LanguageModelSAETrainingRunner` when the model is
wrapped by TransformerLens's `TransformerBridge` (postlens's ``transformer_lens`` backend): the
runner accepts it as ``override_model`` and an in-memory token dataset as ``override_dataset``,
so nothing is fetched from a hub. Any other backend (nnsight, or a model built in memory, which
the bridge cannot boot without a folder) is trained with SAELens's own `SAETrainer` on the
residual-stream activations postlens feeds it, from the same packed token rows: same SAE class,
same loss, same optimizer. Weights & Biases logging is off in both paths.

Quality (`sae_quality`) on held-out texts: variance explained 1 − ‖x − x̂‖² / ‖x − x̄‖², mean L0
(active latents per token) and the share of latents never active.

Example (a real SAE needs ``training_tokens`` in the hundreds of thousands; this one is a sketch):
    >>> from postlens.data.defaults import provider_for
    >>> from postlens.pair import ModelPair
    >>> pair = ModelPair.load("organism:base", "organism:rl", backend="transformer_lens")
    >>> corpus = provider_for("organism:base").corpus(40, seed=1)
    >>> config = SAETrainConfig(layer=2, training_tokens=512, batch_tokens=64, context=32)
    >>> sae = train_sae(pair.base, corpus[:30], config)  # SAELens's runner on the bridge
    >>> sae.cfg.d_sae, sae_hook(sae)
    (512, 'blocks.2.hook_resid_post')
    >>> quality = sae_quality(sae, pair.base, corpus[30:])  # held-out texts
    >>> sorted(quality), 0 <= quality["dead_fraction"] <= 1
    (['dead_fraction', 'l0', 'n_tokens', 'variance_explained'], True)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from postlens.errors import CheckpointError, ConfigError, NotSupportedError, PostlensError
from postlens.hooks import parse_hook

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

logger = logging.getLogger(__name__)

_RESID_SITES = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")


@dataclass(frozen=True)
class SAETrainConfig:
    """How to train a standard (ReLU + L1) SAE on the residual stream after `layer`.

    Attributes:
        layer: the block whose ``hook_resid_post`` is reconstructed.
        expansion: d_sae / d_model.
        l1_coefficient: sparsity penalty.
        training_tokens: activations seen in training.
        context: tokens per training row (documents are packed, each with BOS and EOS).
        batch_tokens: activations per optimizer step.
        lr: learning rate (constant).
        seed: seed of the SAE's initialisation and of the data order.
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
        if self.layer < 0 or self.expansion < 1 or self.context < 2:
            raise ConfigError("need layer >= 0, expansion >= 1 and context >= 2")
        if self.batch_tokens < 1 or self.training_tokens < self.batch_tokens:
            raise ConfigError("need 1 <= batch_tokens <= training_tokens")
        if self.l1_coefficient < 0 or self.lr <= 0:
            raise ConfigError("need l1_coefficient >= 0 and lr > 0")

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.hook_resid_post"


def _token_rows(tokenizer: Tokenizer, texts: Sequence[str], context: int) -> list[list[int]]:
    """Documents tokenized as at inference (BOS ...), each closed by EOS, packed into rows."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text).input_ids + [tokenizer.eos_token_id])
    return [ids[i : i + context] for i in range(0, len(ids) - context + 1, context)]


def train_sae(
    backend: Any,
    texts: Sequence[str],
    config: SAETrainConfig,
    method: Literal["auto", "runner", "activations"] = "auto",
) -> Any:
    """Train a standard SAE on `backend`'s residual stream over `texts`.

    Args:
        backend: a postlens `Backend` (``pair.base``); a ``transformer_lens`` one goes through
            SAELens's training runner, any other through SAELens's trainer on fed activations.
        texts: the training corpus (packed into rows of ``config.context`` tokens).
        config: training settings.
        method: force one path (``"runner"`` needs the transformer_lens backend).

    Returns:
        The trained SAELens SAE, in eval mode (``sae.save_model(folder)`` saves it).

    Raises:
        PostlensError: the layer does not exist, the corpus is too short for one row, or
            ``method="runner"`` without the transformer_lens backend.

    Example (on the nnsight backend: SAELens's trainer on fed activations; a real SAE wants
    ``training_tokens=600_000`` or so):
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> corpus = provider_for("organism:base").corpus(30, seed=1)
        >>> config = SAETrainConfig(layer=2, training_tokens=512, batch_tokens=64, context=32)
        >>> sae = train_sae(pair.base, corpus, config)
        >>> sae.cfg.d_in, sae.cfg.d_sae, sae.training  # d_model, expansion 4 x d_model, eval mode
        (128, 512, False)
    """
    _require_sae_lens()
    parse_hook(config.hook, backend.n_layers)
    rows = _token_rows(backend.tokenizer, texts, config.context)
    if not rows:
        raise PostlensError(f"the corpus is shorter than one row of {config.context} tokens")
    os.environ.setdefault("WANDB_MODE", "disabled")
    has_bridge = hasattr(backend, "bridge")
    if method == "runner" and not has_bridge:
        raise PostlensError(
            "SAELens's runner needs the transformer_lens backend (it runs the TransformerBridge)"
        )
    if method == "runner" or (method == "auto" and has_bridge):
        sae = _train_with_runner(backend, rows, config)
    else:
        logger.info("training on fed activations (SAETrainer): %s has no bridge", backend.name)
        sae = _train_on_activations(backend, rows, config)
    sae.eval()
    return sae


def sae_lens_installed() -> bool:
    """Whether SAELens (the optional ``sae`` extra) can be imported.

    Example:
        >>> isinstance(sae_lens_installed(), bool)
        True
    """
    import importlib.util

    return importlib.util.find_spec("sae_lens") is not None


def _require_sae_lens() -> None:
    if not sae_lens_installed():
        raise NotSupportedError(
            "SAEs are read and trained with SAELens, which is not installed: "
            "pip install 'postlens[sae]'"
        )


def _buffer_batches(config: SAETrainConfig) -> int:
    """The runner's ``n_batches_in_buffer``: its mixing buffer holds that many rows of
    ``context`` tokens; about four training batches, as `_activation_batches` shuffles."""
    return max(2, 4 * config.batch_tokens // config.context)


def _train_with_runner(backend: Any, rows: list[list[int]], config: SAETrainConfig) -> Any:
    from datasets import Dataset
    from sae_lens import (
        LanguageModelSAERunnerConfig,
        LanguageModelSAETrainingRunner,
        LoggingConfig,
        StandardTrainingSAEConfig,
    )

    d_model = backend.d_model
    cfg = LanguageModelSAERunnerConfig(
        sae=StandardTrainingSAEConfig(d_in=d_model, d_sae=config.expansion * d_model, l1_coefficient=config.l1_coefficient),
        model_name=str(getattr(backend.hf_model.config, "_name_or_path", "model")), hook_name=config.hook,
        dataset_path="", is_dataset_tokenized=True, streaming=False, context_size=config.context,
        training_tokens=config.training_tokens, train_batch_size_tokens=config.batch_tokens,
        store_batch_size_prompts=32, n_batches_in_buffer=_buffer_batches(config),
        lr=config.lr, device=str(backend.device), seed=config.seed, prepend_bos=False,
        logger=LoggingConfig(log_to_wandb=False), checkpoint_path=None, output_path=None,
    )  # fmt: skip
    runner = LanguageModelSAETrainingRunner(
        cfg, override_dataset=Dataset.from_dict({"input_ids": rows}), override_model=backend.bridge
    )
    return runner.run()


def _activation_batches(
    backend: Any, rows: list[list[int]], config: SAETrainConfig
) -> Iterator[Float[Tensor, "batch_tokens d_model"]]:
    """Shuffled batches of activations, forever: rows in random order, tokens shuffled in a
    buffer of about eight batches (as SAELens's activation store mixes its buffer)."""
    gen = torch.Generator().manual_seed(config.seed)
    rows_per_chunk = max(1, 8 * config.batch_tokens // config.context)
    leftover = torch.empty(0, backend.d_model)
    while True:
        order = torch.randperm(len(rows), generator=gen)
        for start in range(0, len(rows), rows_per_chunk):
            ids = torch.tensor([rows[int(i)] for i in order[start : start + rows_per_chunk]])
            acts = backend.run(ids, torch.ones_like(ids), hooks=[config.hook])[config.hook]
            acts = acts.reshape(-1, backend.d_model).float().cpu()
            acts = torch.cat([leftover, acts[torch.randperm(len(acts), generator=gen)]])
            n_full = len(acts) // config.batch_tokens * config.batch_tokens
            yield from acts[:n_full].split(config.batch_tokens)
            leftover = acts[n_full:]


def _train_on_activations(backend: Any, rows: list[list[int]], config: SAETrainConfig) -> Any:
    from sae_lens import LoggingConfig, StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(config.seed)
    d_model = backend.d_model
    sae = StandardTrainingSAE(
        StandardTrainingSAEConfig(
            d_in=d_model, d_sae=config.expansion * d_model, l1_coefficient=config.l1_coefficient
        )
    )
    meta = sae.cfg.metadata
    meta.hook_name, meta.context_size, meta.prepend_bos = config.hook, config.context, False
    meta.model_name = str(getattr(backend.hf_model.config, "_name_or_path", "model"))
    trainer_cfg = SAETrainerConfig(
        total_training_samples=config.training_tokens,
        train_batch_size_samples=config.batch_tokens,
        lr=config.lr,
        lr_end=config.lr / 10,  # as the runner's config sets it (unused by the constant schedule)
        device=str(backend.device),
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(trainer_cfg, sae, _activation_batches(backend, rows, config))
    return trainer.fit()


def save_sae(sae: Any, path: str | Path) -> Path:
    """Save with SAELens's `save_model` into a temporary sibling, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        sae.save_model(str(tmp))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_sae(source: str | Path, sae_id: str | None = None, device: str = "cpu") -> Any:
    """An SAE from a folder saved by SAELens, or a released SAE by name (needs a hub).

    Args:
        source: a folder (``cfg.json`` + ``sae_weights.safetensors``) or a SAELens release.
        sae_id: the SAE inside the release.
        device: where to put it.

    Raises:
        CheckpointError: the folder is not an SAE, or the release cannot be fetched.

    Example (a released SAE: ``load_sae("gpt2-small-res-jb", "blocks.8.hook_resid_pre")``, which
    needs the hub):
        >>> from postlens.models.specs import ORGANISM_ROOT
        >>> sae = load_sae(ORGANISM_ROOT / "sae")  # the organism's SAE, shipped as a folder
        >>> sae.cfg.d_in, sae.cfg.d_sae
        (128, 512)
        >>> load_sae("no/such/folder")
        Traceback (most recent call last):
        ...
        postlens.errors.CheckpointError: no/such/folder: no such folder; for a released SAE give its release and sae_id
    """
    _require_sae_lens()
    from sae_lens import SAE

    path = Path(source)
    if path.exists():
        try:
            with warnings.catch_warnings():
                # SAELens suggests HookedSAETransformer kwargs; postlens runs the SAE itself.
                warnings.filterwarnings("ignore", message="(?s).*model_from_pretrained_kwargs")
                return SAE.load_from_disk(str(path), device=device)
        except Exception as err:
            raise CheckpointError(f"{path}: not an SAELens SAE folder ({err})") from None
    if sae_id is None:
        raise CheckpointError(
            f"{source}: no such folder; for a released SAE give its release and sae_id"
        )
    try:
        return SAE.from_pretrained(str(source), sae_id, device=device)
    except Exception as err:
        raise CheckpointError(
            f"{source}/{sae_id}: cannot load the released SAE here (is the hub reachable?): {err}"
        ) from None


def sae_hook(sae: Any) -> str:
    """The hook an SAE was trained on (from its metadata)."""
    hook = getattr(sae.cfg.metadata, "hook_name", None)
    if not hook:
        raise PostlensError("the SAE does not say which hook it reads (cfg.metadata.hook_name)")
    return hook


def check_sae(sae: Any, hf_model: Model) -> str:
    """Refuse an SAE of the wrong width or hook for the model; returns its hook name.

    Raises:
        PostlensError: ``d_in`` is not the model's ``d_model``, the hook's layer does not
            exist, or the hook is not on the residual stream.

    Example:
        >>> import postlens as pl
        >>> from postlens.models.specs import ORGANISM_ROOT
        >>> from postlens.testing import tiny_model
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> sae = load_sae(ORGANISM_ROOT / "sae")
        >>> check_sae(sae, pair.base.hf_model)
        'blocks.2.hook_resid_post'
        >>> check_sae(sae, tiny_model("llama")[0])  # another model's width
        Traceback (most recent call last):
        ...
        postlens.errors.PostlensError: the SAE reads vectors of width 128, the model's residual stream has 32: ...
    """
    cfg = getattr(hf_model, "hf_model", hf_model).config
    d_model, n_layers = cfg.hidden_size, cfg.num_hidden_layers
    if sae.cfg.d_in != d_model:
        raise PostlensError(
            f"the SAE reads vectors of width {sae.cfg.d_in}, the model's residual stream has "
            f"{d_model}: it was trained on another model"
        )
    hook = sae_hook(sae)
    point = parse_hook(hook, n_layers)
    if point.site not in _RESID_SITES:
        raise PostlensError(
            f"the SAE reads {hook}; postlens diffs SAEs on the residual stream only"
        )
    return hook


@torch.no_grad()
def sae_quality(
    sae: Any, backend: Any, texts: Sequence[str], batch_size: int = 32
) -> dict[str, float]:
    """Variance explained, mean L0 and dead share of latents on `texts` (every real token).

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> from postlens.models.specs import ORGANISM_ROOT
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> sae = load_sae(ORGANISM_ROOT / "sae")
        >>> held_out = provider_for("organism:base").corpus(10, seed=1)
        >>> quality = sae_quality(sae, pair.base, held_out)
        >>> quality["variance_explained"] > 0.9, quality["n_tokens"] > 0
        (True, True)
    """
    hook = check_sae(sae, backend.hf_model)
    xs = [acts[mask.bool()] for acts, mask in backend.iter_activations(texts, hook, batch_size)]
    x = torch.cat(xs).float().to(sae.W_dec.device)
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
