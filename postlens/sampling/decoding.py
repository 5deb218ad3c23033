"""Decoding with two models at once: each step's distribution combined from both models' logits.

`two_model_decode` runs a driver and a helper model side by side (each with its own KV cache) and
samples every step from ``combine(logits_driver, logits_helper)``. Two samplers build on it:

* logit-level diff amplification (Goodfire, 2025): ``logits_post + α·(logits_post − logits_base)``
  (`amplified_completions`); α = 0 samples the post model;
* fork substitution (`postlens.diffs.causal.substitution`): the driver's logits, except at the rows
  and steps the combine function hands over to the helper.

Sampling replicates `postlens.sampling.generation.sample_completions` (the same left padding, position
ids, per-batch seeds, temperature and multinomial draw, stop ids), so when the combined logits
are one model's own, the completions are that model's, token for token.

Example:
    >>> import postlens as pl
    >>> pair = pl.load("organism:base", rl="organism:rl").pair
    >>> a = amplified_completions(pair.base, pair.post, pair.tokenizer, ["Q: 1+2=?\\n"], alpha=0.0,
    ...                           max_new_tokens=12, temperature=0.0)
    >>> b = pair.generate("post", ["Q: 1+2=?\\n"], max_new_tokens=12, temperature=0.0)
    >>> a[0].completion_ids == b[0].completion_ids
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from postlens.data.batch import Sample
from postlens.models import compat
from postlens.sampling.generation import SampleConfig, _encode_left, until_stop

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

#: (driver logits, helper logits) of one step → (logits sampled from, rows handed over).
Combine = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _step(model: Model, ids: Tensor, mask: Tensor, cache: Any) -> Float[Tensor, "batch vocab"]:
    # Position ids as transformers' generate makes them from a left-padded mask.
    pos = (mask.cumsum(-1) - 1).clamp_min(0)[:, -ids.shape[1] :]
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                use_cache=True)  # fmt: skip
    return out.logits[:, -1, :].float()


def _pick(logits: Tensor, temperature: float) -> Tensor:
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, num_samples=1).squeeze(1)


@torch.no_grad()
def decode_batch(
    driver: Any, helper: Any, input_ids: Tensor, mask: Tensor, combine: Combine,
    max_new_tokens: int, temperature: float, stop: Sequence[int], pad_id: int,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """New tokens ``[batch, steps]`` and whether each was handed over ``[batch, steps]``."""
    from transformers import DynamicCache

    device = driver.device
    ids, mask = input_ids.to(device), mask.to(device)
    caches = (DynamicCache(), DynamicCache())
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
    stop_t = torch.tensor(list(stop) or [-1], device=device)
    tokens, handed, step_ids = [], [], ids
    for _ in range(max_new_tokens):
        logits, hand = combine(_step(driver, step_ids, mask, caches[0]),
                               _step(helper, step_ids, mask, caches[1]))  # fmt: skip
        nxt = torch.where(
            done, torch.full_like(done, pad_id, dtype=torch.long), _pick(logits, temperature)
        )
        tokens.append(nxt)
        handed.append(hand & ~done)
        done = done | torch.isin(nxt, stop_t)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids = nxt.unsqueeze(1)
        if bool(done.all()):
            break
    return torch.stack(tokens, 1).cpu(), torch.stack(handed, 1).cpu()


def two_model_decode(
    driver: Any, helper: Any, tokenizer: Tokenizer, prompts: Sequence[str], combine: Combine,
    n: int = 1, max_new_tokens: int = SampleConfig.max_new_tokens,
    temperature: float = SampleConfig.temperature, seed: int = SampleConfig.seed,
    batch_size: int = SampleConfig.batch_size, label: str = "",
) -> tuple[list[Sample], list[list[bool]]]:  # fmt: skip
    """Completions sampled from ``combine(driver, helper)``, and the handed-over flags of each.

    Args:
        driver, helper: backends (or Hugging Face causal LMs) sharing `tokenizer`.
        prompts: the prompts, `n` completions each.
        combine: step logits of both → (logits to sample, rows handed over).
        n, max_new_tokens, temperature, seed, batch_size: as `sample_completions`.
    """
    SampleConfig(n, max_new_tokens, temperature, seed=seed, batch_size=batch_size)
    d_hf, h_hf = getattr(driver, "hf_model", driver), getattr(helper, "hf_model", helper)
    stop = sorted({*compat.stop_ids(tokenizer, None), *_eos(d_hf)})
    jobs = [p for p in prompts for _ in range(n)]
    samples, flags = [], []
    for index, start in enumerate(range(0, len(jobs), batch_size)):
        torch.manual_seed(seed * 1_000_003 + index)  # the seeds of `sample_completions`
        chunk = jobs[start : start + batch_size]
        ids, mask = _encode_left(tokenizer, chunk)
        new, handed = decode_batch(d_hf, h_hf, ids, mask, combine, max_new_tokens, temperature,
                                   stop, tokenizer.pad_token_id)  # fmt: skip
        for row, prompt in enumerate(chunk):
            completion = until_stop(new[row].tolist(), stop)
            text = str(tokenizer.decode(completion, skip_special_tokens=True))
            prompt_ids = ids[row][mask[row].bool()].tolist()
            samples.append(Sample(str(prompt), text, prompt_ids, completion, label))
            flags.append(handed[row, : len(completion)].tolist())
    return samples, flags


def _eos(hf_model: Model) -> list[int]:
    eos = getattr(getattr(hf_model, "generation_config", None), "eos_token_id", None)
    return [] if eos is None else [int(e) for e in (eos if isinstance(eos, list) else [eos])]


def amplified_completions(
    base: Any, post: Any, tokenizer: Tokenizer, prompts: Sequence[str], alpha: float = 1.0,
    **kwargs: Any,
) -> list[Sample]:  # fmt: skip
    """Samples from ``logits_post + α·(logits_post − logits_base)`` (model-diff amplification).

    α = 0 is the post model itself; α > 0 exaggerates what the fine-tune changed, surfacing
    behaviours it made rare but possible. Keyword arguments as `two_model_decode`.
    """

    def combine(post_logits: Tensor, base_logits: Tensor) -> tuple[Tensor, Tensor]:
        if alpha == 0:
            return post_logits, torch.zeros(
                post_logits.shape[0], dtype=torch.bool, device=post_logits.device
            )
        out = post_logits + alpha * (post_logits - base_logits)
        return out, torch.zeros(post_logits.shape[0], dtype=torch.bool, device=out.device)

    return two_model_decode(post, base, tokenizer, prompts, combine, **kwargs)[0]
