"""Training a crosscoder on streamed activations, resumably.

`paired_batches` runs every model on the same texts, chunk by chunk, and yields the same tokens'
activations stacked ``[batch, model, d_model]``: never the whole corpus in memory, only one chunk
of texts (its tokens shuffled together, the mixing buffer). The stream is deterministic and
can start at any batch without running the models on what it skips (token counts come from the
tokenizer alone), so a resumed run sees exactly the batches an uninterrupted one would.

`train_crosscoder` trains on any such stream (or on any iterable of ``[batch, model, d_model]``
tensors, e.g. synthetic activations), normalising each model's activations first (SAELens's
convention, `postlens.diffs.crosscoder.model`), with Adam at a constant learning rate that decays
linearly over the last 20% of the steps (SAELens's default schedule shape). Every
``checkpoint_every`` steps the crosscoder, the optimizer state and the step are written to the
checkpoint folder (safetensors + JSON, `save_crosscoder`); given the same folder again, training
resumes from there.

Example:
    >>> gen = torch.Generator().manual_seed(0)
    >>> batches = [torch.randn(64, 2, 8, generator=gen) for _ in range(8)]
    >>> cfg = CrosscoderConfig(n_latents=16, k=2, batch_tokens=64, training_tokens=512)
    >>> cc, log = train_crosscoder(batches, cfg, checkpoint="ckpt")
    >>> log.steps, cc.n_latents, (Path("ckpt") / "config.json").is_file()
    (8, 16, True)
"""

from __future__ import annotations

import itertools
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from postlens.diffs.crosscoder.model import (
    Crosscoder,
    CrosscoderConfig,
    load_crosscoder,
    save_crosscoder,
    scaling_factors,
)
from postlens.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

#: A stream of batches: an iterable, or a function of the number of batches to skip.
Stream = Iterable[Tensor] | Callable[[int], Iterable[Tensor]]


@dataclass(frozen=True)
class TrainingLog:
    """What a training run did.

    Attributes:
        steps: optimizer steps in all (a resumed run counts the earlier ones too).
        tokens: tokens seen.
        seconds: wall time of this run (activations included).
        peak_memory_mib: the process's peak resident memory (models included), in MiB.
        final_fvu: training reconstruction error / variance over the last 10% of the steps.
        resumed_from: the step a checkpoint was resumed from (0: a fresh run).
    """

    steps: int
    tokens: int
    seconds: float
    peak_memory_mib: float
    final_fvu: float
    resumed_from: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def encode_chunk(tokenizer: Tokenizer, texts: list[str], config: CrosscoderConfig) -> Any:
    return tokenizer(texts, return_tensors="pt", padding=True, padding_side="right",
                     truncation=True, max_length=config.max_tokens)  # fmt: skip


def usable_positions(enc: Any, config: CrosscoderConfig) -> Int[Tensor, "batch pos"]:
    """The positions read: real tokens, without each text's first when `skip_first` (right
    padding: column 0 is every text's first token)."""
    mask = enc["attention_mask"].bool().clone()
    if config.skip_first:
        mask[:, 0] = False
    return mask


def chunk_activations(
    models: Sequence[Any], enc: Any, mask: Tensor, hook: str
) -> Float[Tensor, "token model d_model"]:
    """Every model's activations at `hook` on one tokenized chunk, at the `mask` positions."""
    ids, attn = enc["input_ids"], enc["attention_mask"]
    acts = [m.run(ids, attn, hooks=[hook])[hook][mask].float().cpu() for m in models]
    return torch.stack(acts, dim=1)


def _chunks(n_texts: int, config: CrosscoderConfig, epoch: int) -> list[Tensor]:
    order = torch.randperm(n_texts, generator=torch.Generator().manual_seed(config.seed + epoch))
    return list(order.split(config.texts_per_chunk))


def paired_batches(
    models: Sequence[Any], texts: Sequence[str], config: CrosscoderConfig, skip: int = 0
) -> Iterator[Float[Tensor, "batch model d_model"]]:
    """Batches of ``config.batch_tokens`` tokens' activations of every model, forever.

    Texts are visited in a seeded order per epoch, `texts_per_chunk` at a time; a chunk's tokens
    are shuffled (seeded by epoch and chunk) and appended to the stream. The first `skip`
    batches are passed over without running the models on chunks wholly inside them.
    """
    tok, batch = models[0].tokenizer, config.batch_tokens
    if not texts:
        raise ConfigError("no texts to train the crosscoder on")
    to_drop, pending = skip * batch, torch.empty(0, len(models), models[0].d_model)
    for epoch in itertools.count():
        for c, idx in enumerate(_chunks(len(texts), config, epoch)):
            enc = encode_chunk(tok, [texts[int(i)] for i in idx], config)
            mask = usable_positions(enc, config)
            n = int(mask.sum())
            if to_drop >= n:  # wholly skipped: no forward pass
                to_drop -= n
                continue
            acts = chunk_activations(models, enc, mask, config.hook)
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 10_007 + c)
            acts = acts[torch.randperm(n, generator=gen)][to_drop:]
            to_drop, pending = 0, torch.cat([pending, acts])
            while len(pending) >= batch:
                yield pending[:batch]
                pending = pending[batch:]


def _stream(source: Stream, skip: int) -> Iterator[Tensor]:
    if callable(source):
        return iter(source(skip))
    return itertools.islice(iter(source), skip, None)


def _lr_factor(step: int, steps: int) -> float:
    decay_start = int(0.8 * steps)
    return 1.0 if step < decay_start else max(0.0, (steps - step) / max(1, steps - decay_start))


def _l1_now(config: CrosscoderConfig, step: int) -> float:
    warm = int(config.l1_warmup * config.steps)
    return config.l1_coefficient * min(1.0, (step + 1) / warm) if warm else config.l1_coefficient


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    state = opt.state_dict()["state"]
    return {f"optim.{i}.{k}": torch.as_tensor(v) for i, s in state.items() for k, v in s.items()}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: Any) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, i, key = name.split(".", 2)
            state.setdefault(int(i), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def peak_memory_mib() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _fresh(first: list[Tensor], config: CrosscoderConfig) -> Crosscoder:
    n_models, d_model = first[0].shape[1:]
    cc = Crosscoder(n_models, d_model, config)
    with torch.no_grad():
        cc.scales.copy_(scaling_factors(first))
        # start the decoder bias at the mean activation: the latents then model deviations
        cc.b_dec.copy_(cc.normalise(torch.cat(first).float()).mean(0))
    return cc


def _resume(path: Path, config: CrosscoderConfig) -> tuple[Crosscoder, dict[str, Any]] | None:
    if not (path / "config.json").is_file():
        return None
    cc, meta = load_crosscoder(path)
    if cc.config.to_json() != config.to_json():
        raise CheckpointError(f"{path}: a checkpoint of other settings; use another folder")
    return cc, meta


def train_crosscoder(
    batches: Stream, config: CrosscoderConfig, models: Sequence[str] = ("base", "post"),
    checkpoint: str | Path | None = None, progress: bool = False,
    provenance: dict[str, Any] | None = None,
) -> tuple[Crosscoder, TrainingLog]:  # fmt: skip
    """Train a crosscoder on a stream of ``[batch, model, d_model]`` activations.

    Args:
        batches: the raw activations (an iterable, or ``skip → iterable`` such as
            ``lambda skip: paired_batches(backends, texts, config, skip)``).
        config: the settings (``steps = training_tokens // batch_tokens``).
        models: the models' names, in the stream's order (base first).
        checkpoint: a folder: written every ``checkpoint_every`` steps and at the end, and
            resumed from when it holds a checkpoint of the same settings.
        progress: a tqdm bar (the caller decides: `postlens.progress.show_progress`).
        provenance: saved with the checkpoint (models' hashes, hook, data).

    Raises:
        CheckpointError: the folder holds a checkpoint of other settings, or is unreadable.
    """
    start_time, path = time.perf_counter(), Path(checkpoint) if checkpoint else None
    resumed = _resume(path, config) if path is not None else None
    if resumed is None:
        first = list(itertools.islice(_stream(batches, 0), config.norm_batches))
        if not first:
            raise ConfigError("the activation stream is empty")
        cc, start, fvus, lows = _fresh(first, config), 0, [], []
    else:
        cc, meta = resumed
        start, fvus = meta["state"]["step"], meta["state"].get("fvu", [])
        lows = meta["state"].get("kept_min", [])
    opt = torch.optim.Adam(cc.parameters(), lr=config.lr, betas=(0.9, 0.999))
    if resumed is not None:
        _restore_optimizer(opt, resumed[1]["tensors"], resumed[1]["state"]["param_groups"])
    stream = _stream(batches, start)
    bar = _bar(progress, config.steps, start)

    def save(step: int) -> None:
        if path is not None:
            groups = opt.state_dict()["param_groups"]
            state = {"step": step, "fvu": fvus, "kept_min": lows, "param_groups": groups}
            save_crosscoder(cc, path, list(models), provenance, _optimizer_tensors(opt), state)

    for step in range(start, config.steps):
        raw = next(stream, None)
        if raw is None:
            raise ConfigError(f"the activation stream ended after {step} of {config.steps} steps")
        fvus.append(_step(cc, opt, cc.normalise(raw.float()), config, step))
        if cc.last_kept_min is not None:
            lows.append(cc.last_kept_min)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(fvu=f"{fvus[-1]:.3f}")
        if (step + 1) % config.checkpoint_every == 0:
            save(step + 1)
    _final_threshold(cc, lows)
    save(config.steps)
    if bar is not None:
        bar.close()
    cc.eval()
    tail = fvus[-max(1, len(fvus) // 10) :]
    log = TrainingLog(config.steps, config.steps * config.batch_tokens,
                      round(time.perf_counter() - start_time, 2), round(peak_memory_mib(), 1),
                      float(sum(tail) / len(tail)) if tail else float("nan"), start)  # fmt: skip
    return cc, log


def _final_threshold(cc: Crosscoder, lows: list[float]) -> None:
    """BatchTopK's inference threshold: the mean smallest kept value of the last 10% of steps."""
    if cc.config.kind == "batchtopk" and lows:
        tail = lows[-max(1, len(lows) // 10) :]
        cc.threshold.fill_(sum(tail) / len(tail))


def _step(
    cc: Crosscoder, opt: torch.optim.Optimizer, x: Tensor, config: CrosscoderConfig, step: int
) -> float:
    """One optimizer step; returns the batch's fraction of variance unexplained."""
    for group in opt.param_groups:
        group["lr"] = config.lr * _lr_factor(step, config.steps)
    total, mse, _ = cc.loss(x, _l1_now(config, step))
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    variance = (x - x.mean(0)).pow(2).sum((-1, -2)).mean().clamp_min(1e-12)
    return float(mse.detach() / variance)


def _bar(progress: bool, total: int, start: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="crosscoder", unit="step")
