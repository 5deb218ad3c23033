"""`ModelPair`: a base model and its post-trained child, loaded side by side on one backend.

Memory: a pair holds two models once, so it needs about 2 × n_params × bytes-per-parameter
(float32: 8 bytes per parameter of one model; bfloat16: 4), plus the activations of the batch in
flight. Features reuse the loaded pair; nothing is loaded twice.

Example:
    >>> from postlens import ModelPair
    >>> pair = ModelPair.load("organism:base", "organism:rl", backend="nnsight")
    >>> batch = pair.tokenize(["Q: 12 + 34 = ?"])
    >>> out = pair.run("post", batch, hooks=["blocks.0.hook_resid_post"])
    >>> out["blocks.0.hook_resid_post"].shape[-1] == pair.d_model
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from postlens.backends.base import Backend, Intervention, RunOutput

# Defined in a light module, so that the command line reads them without importing torch.
from postlens.backends.names import (  # noqa: F401  (re-exported)
    BACKENDS,
    DEFAULT_BACKEND,
    BackendName,
)
from postlens.data.batch import Sample, TokenBatch
from postlens.errors import PostlensError
from postlens.hooks import hook_names
from postlens.models.chat import ChatFormat, choose_chat
from postlens.models.compat import TokenizerComparison, check_comparable, check_tokenizer_fits
from postlens.models.dtypes import device_and_map, resolve_dtype
from postlens.models.loading import LoadOptions, check_checkpoint, load_hf_model, load_tokenizer
from postlens.models.preflight import check_memory
from postlens.models.specs import ResolvedSpec, resolve_spec

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

logger = logging.getLogger(__name__)

Which = Literal["base", "post"]


def make_backend(
    name: str, hf_model: Model, tokenizer: Tokenizer, location: str, remote: bool = False
) -> Backend:
    """Wrap a loaded Hugging Face model in the named backend.

    A backend may modify the model it wraps (TransformerBridge swaps in its own modules), so one
    loaded model serves one backend.

    Raises:
        IncompatibleModelsError: the tokenizer has ids past the model's embedding.
    """
    check_tokenizer_fits(hf_model, tokenizer, location or "the model")
    if name == "transformer_lens":
        if remote:
            raise PostlensError("remote execution is an nnsight feature; use backend='nnsight'")
        from postlens.backends.tlens import TransformerLensBackend

        return TransformerLensBackend(hf_model, tokenizer, location)
    if name == "nnsight":
        from postlens.backends.nnsight_backend import NNsightBackend

        return NNsightBackend(hf_model, tokenizer, remote=remote)
    raise PostlensError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


@dataclass
class ModelPair:
    """A base model and its post-trained child, addressed with the same hook names.

    Attributes:
        base: the base model's backend.
        post: the post-trained model's backend.
        tokenizer: the base's tokenizer (the regular vocabulary is checked shared at load).
        base_spec: where the base came from.
        post_spec: where the post model came from.
        post_tokenizer: the post model's tokenizer (its special tokens and chat template may
            differ from the base's).
        tokens: how the two tokenizers differ and which ids they share (`TokenizerComparison`).
        chat: how prompts become ids (`postlens.models.chat.ChatFormat`: whose chat template, if any).
    """

    base: Backend
    post: Backend
    tokenizer: Tokenizer
    base_spec: ResolvedSpec
    post_spec: ResolvedSpec
    post_tokenizer: Tokenizer = None  # type: ignore[assignment]  # the base's when not given
    # Never None once built: __post_init__ computes what was not given.
    tokens: TokenizerComparison = None  # type: ignore[assignment]
    chat: ChatFormat = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.post_tokenizer is None:
            self.post_tokenizer = self.tokenizer
        if self.tokens is None:
            cfgs = (self.base.hf_model.config, self.post.hf_model.config)
            names = (self.base_spec.spec, self.post_spec.spec)
            self.tokens = check_comparable(*cfgs, self.tokenizer, self.post_tokenizer, names)
        if self.chat is None:
            self.chat = choose_chat("none", self.tokenizer, self.post_tokenizer)

    @classmethod
    def load(
        cls,
        base: str,
        post: str,
        backend: BackendName = DEFAULT_BACKEND,
        device: str | None = None,
        dtype: str | None = None,
        device_map: str | dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        remote: bool = False,
        chat_template: str | None = None,
    ) -> ModelPair:
        """Load both models, check they are comparable, and wrap them in `backend`.

        Args:
            base: spec of the base model (``organism:base``, a folder, a hub id).
            post: spec of the post-trained model.
            backend: ``"transformer_lens"`` (TransformerBridge) or ``"nnsight"``.
            device: torch device; default CPU; ``"auto"`` is ``device_map="auto"``.
            dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``; default the checkpoints'
                storage dtype when it is 16-bit, else float32 (`postlens.models.dtypes`).
            device_map: passed to transformers/accelerate for pairs too large for one device.
            trust_remote_code: allow code shipped with a checkpoint to run. Off by default.
            remote: nnsight only: run traces on NDIF (needs an API key).
            chat_template: ``"post"``, ``"base"`` or ``"none"``: whose chat template formats
                prompts (`postlens.models.chat`); default ``post`` when its tokenizer has one.

        Raises:
            SpecError, CheckpointError, IncompatibleModelsError: with the exact problem.
        """
        family = cls.load_family(
            base, {"post": post}, backend, device, dtype, device_map, trust_remote_code, remote,
            chat_template,
        )  # fmt: skip
        return family["post"]

    @classmethod
    def load_family(
        cls,
        base: str,
        children: Mapping[str, str],
        backend: BackendName = DEFAULT_BACKEND,
        device: str | None = None,
        dtype: str | None = None,
        device_map: str | dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        remote: bool = False,
        chat_template: str | None = None,
    ) -> dict[str, ModelPair]:
        """Load a base and several children (e.g. ``{"sft": ..., "rl": ...}``), the base once.

        Returns one `ModelPair` per child; all of them share the same base backend. Arguments
        are those of `load`.

        Example:
            >>> pairs = ModelPair.load_family("organism:base", {"sft": "organism:sft", "rl": "organism:rl"})
            >>> pairs["rl"].base is pairs["sft"].base
            True
        """
        if backend not in BACKENDS:
            raise PostlensError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if not children:
            raise PostlensError("give at least one post-trained model")
        if device == "auto":
            device, device_map = device_and_map(device)
        specs = {"base": resolve_spec(base)} | {k: resolve_spec(v) for k, v in children.items()}
        dtype = resolve_dtype(dtype, list(specs.values()))
        options = LoadOptions(device, dtype, device_map, trust_remote_code)
        for spec in specs.values():  # fail on missing or corrupted weights before any loading
            check_checkpoint(spec)
        check_memory(list(specs.values()), dtype, device, device_map)
        # A LoRA child is applied to BASE itself (and refused if it names another base).
        bases = {k: None if k == "base" else specs["base"] for k in specs}
        toks = {k: load_tokenizer(s, options, bases[k]) for k, s in specs.items()}
        models = {"base": load_hf_model(specs["base"], options)}
        models |= {k: load_hf_model(specs[k], options, bases[k], models["base"]) for k in children}
        names = {k: (specs["base"].spec, specs[k].spec) for k in children}
        tokens = {
            k: check_comparable(models["base"].config, models[k].config, toks["base"], toks[k],
                                names[k])
            for k in children
        }  # fmt: skip
        chats = {k: choose_chat(chat_template, toks["base"], toks[k], names[k]) for k in children}
        backends = {
            k: make_backend(backend, models[k], toks[k], specs[k].location, remote) for k in specs
        }
        return {
            k: cls(backends["base"], backends[k], toks["base"], specs["base"], specs[k], toks[k],
                   tokens[k], chats[k])
            for k in children
        }  # fmt: skip

    @classmethod
    def from_models(
        cls,
        base_model: Model,
        post_model: Model,
        tokenizer: Tokenizer,
        backend: BackendName = "nnsight",
        names: tuple[str, str] = ("base", "post"),
    ) -> ModelPair:
        """Build a pair from models already in memory (e.g. inside a training loop).

        The transformer_lens backend needs a folder to read the config from, so in-memory pairs
        default to nnsight.
        """
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        specs = [ResolvedSpec(n, "memory", n) for n in names]
        location = getattr(base_model.config, "_name_or_path", "")
        pair = [make_backend(backend, m, tokenizer, location) for m in (base_model, post_model)]
        return cls(pair[0], pair[1], tokenizer, specs[0], specs[1])

    # --- shape of the pair -------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.base.n_layers

    @property
    def d_model(self) -> int:
        return self.base.d_model

    @property
    def backend_name(self) -> str:
        return self.base.name

    def hook_names(self) -> list[str]:
        """Every hook name both models answer to, in forward order."""
        return hook_names(self.n_layers)

    def __getitem__(self, which: Which) -> Backend:
        if which == "base":
            return self.base
        if which == "post":
            return self.post
        raise PostlensError(f"which model? expected 'base' or 'post', got {which!r}")

    def memory_bytes(self) -> int:
        """Bytes held by the two models' parameters and buffers."""
        total = 0
        for backend in (self.base, self.post):
            for t in [*backend.hf_model.parameters(), *backend.hf_model.buffers()]:
                total += t.numel() * t.element_size()
        return total

    # --- tokens ------------------------------------------------------------------------
    def tokenize(
        self,
        texts: str | Sequence[str],
        max_length: int | None = None,
        padding_side: Literal["left", "right"] = "right",
        add_special_tokens: bool = True,
    ) -> TokenBatch:
        """Tokenize once for both models (they share the tokenizer).

        Args:
            texts: the texts; a bare string is one text (not a sequence of characters).

        Example:
            >>> import postlens as pl
            >>> pair = pl.load("organism:base", rl="organism:rl").pair
            >>> pair.tokenize("Q: 12 + 34 = ?").input_ids.shape[0]
            1
        """
        if isinstance(texts, str):
            texts = [texts]
        tok = self.tokenizer
        enc = tok(
            list(texts),
            return_tensors="pt",
            padding=True,
            padding_side=padding_side,
            truncation=max_length is not None,
            max_length=max_length,
            add_special_tokens=add_special_tokens,
        )
        return TokenBatch(enc["input_ids"], enc["attention_mask"], list(texts))

    # --- running -----------------------------------------------------------------------
    def run(
        self,
        which: Which,
        batch: TokenBatch | torch.Tensor,
        hooks: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> RunOutput:
        """Run one model on a batch; capture `hooks`; replace activations per `interventions`.

        Args:
            which: ``"base"`` or ``"post"``.
            batch: a `TokenBatch` or a tensor of token ids (no padding).
            hooks: hook names whose activations to return (nothing else is kept).
            interventions: hook name → replacement tensor or function of the activation.
        """
        ids, mask = (
            (batch.input_ids, batch.attention_mask)
            if isinstance(batch, TokenBatch)
            else (batch, None)
        )
        return self[which].run(ids, mask, hooks=hooks, interventions=interventions)

    def run_both(
        self, batch: TokenBatch | torch.Tensor, hooks: Sequence[str] = ()
    ) -> tuple[RunOutput, RunOutput]:
        """Run base and post on the same tokens."""
        return self.run("base", batch, hooks), self.run("post", batch, hooks)

    def generate(
        self,
        which: Which,
        prompts: Sequence[str],
        n: int = 1,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        interventions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> list[Sample]:
        """Sample `n` completions per prompt from one model; seeded and batched.

        Returns samples grouped by prompt: the n samples of prompt 0 first. Options left
        ``None`` take `SampleConfig`'s defaults. `interventions` (hook name → function of the
        activation, as `run` takes them) apply at every step of every sample
        (`postlens.sampling.interventions`).
        """
        from postlens.sampling.generation import SampleConfig, sample_completions
        from postlens.sampling.interventions import intervening

        given: dict[str, Any] = {"max_new_tokens": max_new_tokens, "temperature": temperature,
                                 "top_p": top_p, "seed": seed, "batch_size": batch_size}  # fmt: skip
        cfg = SampleConfig(n=n, **{k: v for k, v in given.items() if v is not None})
        prompts = [self.chat.format(p, f"prompt {i + 1}") for i, p in enumerate(prompts)]
        with intervening(self[which], interventions or {}):
            return sample_completions(
                self[which], self.chat.tokenizer, prompts, n=n, label=which,
                stop_ids=self.tokens.stop_ids, **cfg.generate_kwargs(),
            )  # fmt: skip
