"""Batched, seeded sampling of completions from one backend, and the sampling options.

Example:
    >>> SampleConfig(n=4, temperature=0.7).generate_kwargs()["temperature"]
    0.7
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from postlens.errors import ConfigError
from postlens.models import compat
from postlens.models.chat import TemplatedPrompt
from postlens.progress import show_progress

# torch is imported inside the functions: the command line reads `SampleConfig`'s defaults at
# start-up, and `postlens weights` / `info` must not pay for torch's import to build options.
if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from postlens.backends.base import Backend
    from postlens.data.batch import Sample
    from postlens.models.types import Generating, Model, Tokenizer

SOURCES = ("post", "base")


@dataclass(frozen=True)
class SampleConfig:
    """How completions are sampled (forks, activations, pass@k, the report).

    Attributes:
        n: completions per prompt.
        max_new_tokens: length limit of each completion.
        temperature: sampling temperature; 0 means greedy.
        top_p: nucleus sampling mass.
        seed: every batch is seeded from this and its index.
        batch_size: sequences sampled at once.
        source: which model samples the sequences a pair is compared on: ``"post"`` (each
            child, the usual choice) or ``"base"``.
        limit: use at most this many prompts (``None``: all).
    """

    n: int = 2
    max_new_tokens: int = 96
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 64
    source: str = "post"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError(
                f"n, max_new_tokens and batch_size must be positive (got n={self.n}, "
                f"max_new_tokens={self.max_new_tokens}, batch_size={self.batch_size})"
            )
        # Written so that NaN fails too (every comparison with NaN is false).
        if not (0 <= self.temperature < math.inf and 0 < self.top_p <= 1):
            raise ConfigError(
                f"temperature must be a finite number >= 0 and top_p in (0, 1] (got "
                f"temperature={self.temperature}, top_p={self.top_p})"
            )
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be in 0 .. 2**63 - 1, got {self.seed}")
        if self.source not in SOURCES:
            raise ConfigError(f"source must be 'post' or 'base', got {self.source!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be positive, got {self.limit}")

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `sample_completions` (and `ModelPair.generate`)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }


class PlainSampler:
    """A bare model seen as `sample_completions` reads a backend: the model, its tokenizer and
    `generate` (for models outside a pair: a sweep's working model, an organism being built).

    Example:
        >>> from postlens.testing import tiny_model
        >>> model, tok = tiny_model()
        >>> len(sample_completions(PlainSampler(model, tok), tok, ["ab"], n=2, max_new_tokens=3))
        2
    """

    def __init__(self, hf_model: Model, tokenizer: Tokenizer) -> None:
        self.hf_model, self.tokenizer = hf_model, tokenizer

    def generate(self, input_ids: Tensor, attention_mask: Tensor, **kwargs: Any) -> Tensor:
        import torch

        kwargs = {"pad_token_id": self.tokenizer.pad_token_id, **kwargs}
        model = cast("Generating", self.hf_model)
        with torch.no_grad():
            return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def sample_completions(
    backend: Backend | PlainSampler,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    n: int = 1,
    max_new_tokens: int = SampleConfig.max_new_tokens,
    temperature: float = SampleConfig.temperature,
    top_p: float = SampleConfig.top_p,
    seed: int = SampleConfig.seed,
    batch_size: int = SampleConfig.batch_size,
    label: str = "",
    progress: bool | None = None,
    stop_ids: Sequence[int] | None = None,
) -> list[Sample]:
    """Sample `n` completions for every prompt, `batch_size` sequences at a time.

    Each batch reseeds torch from ``seed`` and its index, so results do not depend on what ran
    before. ``temperature=0`` means greedy decoding. A prompt already formatted
    (`postlens.models.chat.TemplatedPrompt`, e.g. a chat template applied) is read as its ids.
    Sampling stops at any of `stop_ids` (default: the eos and end-of-turn tokens of
    `tokenizer` and of the sampling model's own tokenizer, `postlens.models.compat.stop_ids`), and a
    completion keeps the stop token it ended with.

    Example:
        >>> import postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl").pair
        >>> out = sample_completions(pair.post, pair.tokenizer, ["Q: 1+2=?\\n"], n=2, max_new_tokens=8)
        >>> len(out), out[0].prompt
        (2, 'Q: 1+2=?\\n')
    """
    import torch
    from tqdm.auto import tqdm

    SampleConfig(n, max_new_tokens, temperature, top_p, seed, batch_size)  # validates
    check_sample_budget(len(prompts) * n, max_new_tokens)
    stop_ids = sampling_stop_ids(backend, tokenizer, stop_ids)
    jobs = [p for p in prompts for _ in range(n)]
    samples: list[Sample] = []
    chunks = range(0, len(jobs), batch_size)
    # Counted in decoding steps, not batches: one batch of 256 sequences would sit at 0/1 for
    # its whole run. A batch that stops early jumps to its end.
    bar = tqdm(total=len(chunks) * max_new_tokens, desc=f"sampling {label}".strip(),
               unit="step", disable=not show_progress(progress))  # fmt: skip
    with bar:
        for index, start in enumerate(chunks):
            torch.manual_seed(seed * 1_000_003 + index)
            batch = jobs[start : start + batch_size]
            samples.extend(_sample_batch(backend, tokenizer, batch, max_new_tokens, temperature,
                                         top_p, label, list(stop_ids), bar))  # fmt: skip
            bar.update((index + 1) * max_new_tokens - bar.n)
    return samples


#: Memory a sampled token costs once kept (its id in Python lists and its share of the decoded
#: text, with the interpreter's overhead): our estimate, measured at about 40 to 60 bytes.
BYTES_PER_SAMPLED_TOKEN = 64


def check_sample_budget(n_sequences: int, max_new_tokens: int) -> None:
    """Refuse, before any sampling, a run whose completions cannot be held in free memory.

    Raises:
        ConfigError: with the count asked for and the memory it needs against what is free.

    Example:
        >>> check_sample_budget(10**11, 96)
        Traceback (most recent call last):
        ...
        postlens.errors.ConfigError: 100000000000 completions of up to 96 tokens would need about 572205 GiB to keep, ...
    """
    from postlens.models.preflight import available_bytes

    need = n_sequences * max_new_tokens * BYTES_PER_SAMPLED_TOKEN
    free = available_bytes(None)
    if free is not None and need > free:
        raise ConfigError(
            f"{n_sequences} completions of up to {max_new_tokens} tokens would need about "
            f"{need / 2**30:.0f} GiB to keep, and {free / 2**30:.0f} GiB is free; lower the "
            "number of samples (--n), of prompts (--limit) or --max-new-tokens"
        )


def _encode_left(tokenizer: Tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and mask; formatted prompts keep their own ids (no second BOS)."""
    import torch

    if not any(isinstance(p, TemplatedPrompt) for p in prompts):
        enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
        return enc["input_ids"], enc["attention_mask"]
    rows = [prompt_ids(tokenizer, p) for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


def _sample_batch(
    backend: Backend | PlainSampler,
    tokenizer: Tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    label: str,
    stop: list[int],
    bar: Any = None,
) -> list[Sample]:
    from postlens.data.batch import Sample

    # Left padding so every row's generated tokens start at the same column.
    input_ids, attention_mask = _encode_left(tokenizer, prompts)
    greedy = temperature == 0
    out = backend.generate(
        input_ids,
        attention_mask,
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_p=None if greedy else top_p,
        top_k=None,
        **({"eos_token_id": stop} if stop else {}),
        **({"stopping_criteria": _ticker(bar)} if bar is not None and not bar.disable else {}),
    )
    width = input_ids.shape[1]
    samples = []
    for row, prompt in enumerate(prompts):
        prompt_ids = input_ids[row][attention_mask[row].bool()].tolist()
        completion = until_stop(out[row, width:].tolist(), stop)
        text = str(tokenizer.decode(completion, skip_special_tokens=True))
        samples.append(Sample(str(prompt), text, prompt_ids, completion, label))
    return samples


def _ticker(bar: Any) -> Any:
    """A stopping criterion that never stops and moves `bar` one step per decoding step: the
    one per-step hook `generate` offers on every backend."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Tick(StoppingCriteria):
        def __call__(self, input_ids: Tensor, scores: Any, **kwargs: Any) -> Tensor:
            bar.update(1)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Tick()])


def prompt_ids(tokenizer: Tokenizer, prompt: Any) -> list[int]:
    """The ids the sampler feeds for `prompt`: a formatted prompt's own ids
    (`postlens.models.chat.TemplatedPrompt`), else the tokenizer's, special tokens included.

    Example:
        >>> from postlens.organism.tokenizer import build_organism_tokenizer
        >>> prompt_ids(build_organism_tokenizer(), "Q:")[0]  # the BOS id first
        1
    """
    return list(prompt.ids) if isinstance(prompt, TemplatedPrompt) else tokenizer(prompt).input_ids


def sampling_stop_ids(
    backend: Backend | PlainSampler, tokenizer: Tokenizer, stop_ids: Sequence[int] | None = None
) -> list[int]:
    """The ids sampling stops at: `stop_ids` (default: the eos and end-of-turn tokens of
    `tokenizer` and of the model's own tokenizer, `postlens.models.compat.stop_ids`) and the eos ids
    of the model's generation config, which it stops at anyway."""
    if stop_ids is None:
        stop_ids = compat.stop_ids(tokenizer, getattr(backend, "tokenizer", None))
    return sorted({*stop_ids, *_config_eos(backend)})


def _config_eos(backend: Backend | PlainSampler) -> list[int]:
    """The sampling model's own eos ids (its generation config), which it stops at anyway."""
    config = getattr(getattr(backend, "hf_model", None), "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    return [] if eos is None else [int(e) for e in (eos if isinstance(eos, list) else [eos])]


def until_stop(ids: list[int], stop: Sequence[int]) -> list[int]:
    """`ids` up to and including the first stop id (all of them when none occurs).

    Example:
        >>> until_stop([5, 6, 2, 0, 0], [2, 9])
        [5, 6, 2]
    """
    stops = set(stop)
    for i, t in enumerate(ids):
        if t in stops:
            return ids[: i + 1]
    return ids
