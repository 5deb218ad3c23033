"""The interface every backend implements, so that features never touch a backend directly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from postlens.errors import ConfigError

#: Positions of one row on which `Backend.final_hidden` checks, once, that the unembedding is
#: a plain linear map of the final norm's output.
SPLIT_CHECK = 8
#: Config fields of heads that transform the logits after the unembedding matrix (Gemma 2's
#: soft-cap, Cohere's scale, Granite's divisor): the split is never taken where one is set.
HEAD_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")

if TYPE_CHECKING:
    from postlens.models.types import Generating, Model, Tokenizer

#: A replacement for an activation: a tensor of the activation's shape, or a function of it.
Intervention = Tensor | Callable[[Tensor], Tensor]


@dataclass
class RunOutput:
    """Logits of one forward pass, and the activations asked for (never a full cache).

    Attributes:
        logits: the model's output logits.
        activations: hook name → activation, only for the hooks requested.
    """

    logits: Float[Tensor, "batch pos vocab"]
    activations: dict[str, Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Tensor:
        return self.activations[name]


#: What the probes and monitors read: a `Backend`, or a bare (possibly wrapped) torch model.
ModelLike: TypeAlias = "Backend | torch.nn.Module"


class Backend(ABC):
    """One model seen through one interpretability library.

    Subclasses wrap an already-loaded Hugging Face model (`hf_model`), so that both backends and
    plain `transformers` share the same weights and the same memory.
    """

    name: str = "abstract"

    def __init__(self, hf_model: Model, tokenizer: Tokenizer) -> None:
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        cfg = hf_model.config
        self.n_layers: int = cfg.num_hidden_layers
        self.d_model: int = cfg.hidden_size
        self._split_unembedding_ok: bool | None = None

    @property
    def device(self) -> torch.device:
        return next(self.hf_model.parameters()).device

    def plain_parameters(self) -> dict[str, torch.Tensor]:
        """The model's parameters under transformers' own names (what a checkpoint holds)."""
        return dict(self.hf_model.named_parameters())

    @abstractmethod
    def run(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> RunOutput:
        """One forward pass, capturing `hooks` and replacing activations per `interventions`.

        Captured activations are taken after any intervention at the same hook.
        """

    def run_with_grad(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> RunOutput:
        """`run` with autograd recording, so that its outputs can be differentiated.

        Attribution patching (`postlens.diffs.activations.attribution`) differentiates the logits with
        respect to tensors added at hook points through `interventions`. The model's own
        parameters keep ``requires_grad``; take gradients with `torch.autograd.grad` on the
        tensors you need, so that no parameter gradient is computed or stored.

        Raises:
            NotImplementedError: the backend cannot record gradients (e.g. remote execution).
        """
        raise NotImplementedError(f"the {self.name} backend does not record gradients")

    @torch.no_grad()
    def final_hidden(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> Float[Tensor, "batch pos d_model"] | None:
        """The final norm's output from the plain backbone, skipping the unembedding.

        Lets a caller unembed only the positions it needs (with a large vocabulary the
        unembedding is most of a small model's forward pass). ``None`` when that split is not
        exact for this model: its causal-LM head does more than one linear map (logit
        scaling, soft-capping...) or the model does not run locally. Checked once, on the first
        call, against the full forward's logits.
        """
        if self._split_unembedding_ok is None:
            # A few positions of one row decide it: the head's arithmetic does not depend on
            # the length, and a full row cost about one more forward per model.
            self._split_unembedding_ok = self._check_unembedding_split(input_ids[:1, :SPLIT_CHECK])
        if not self._split_unembedding_ok:
            return None
        return self._backbone(input_ids, attention_mask)

    @torch.no_grad()
    def unembed(
        self, hidden: Float[Tensor, "n d_model"], out: Tensor | None = None
    ) -> Float[Tensor, "n vocab"]:
        """Logits of final-norm hidden states (the model's own unembedding).

        Args:
            hidden: final-norm hidden states.
            out: a buffer of at least ``n`` rows to write the logits into (used when the
                unembedding is a plain linear map): with a large vocabulary, a fresh tensor per
                batch costs as much in page faults as the matrix product itself.
        """
        head = self.hf_model.get_output_embeddings()
        # The buffer path multiplies by the weight directly, so only where that is the whole
        # head and the weight sits with the hidden states (not offloaded by accelerate hooks).
        plain = type(head) is torch.nn.Linear and head.weight.device == hidden.device
        if not plain or out is None or out.shape[0] < hidden.shape[0]:
            return head(hidden)
        if out.shape[1:] != head.weight.shape[:1] or out.dtype != head.weight.dtype:
            return head(hidden)
        logits = torch.mm(hidden, head.weight.t(), out=out[: hidden.shape[0]])
        return logits if head.bias is None else logits.add_(head.bias)

    def _backbone(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        mask = None if attention_mask is None else attention_mask.to(self.device)
        out = self.hf_model.base_model(input_ids=input_ids.to(self.device), attention_mask=mask)
        return out.last_hidden_state

    def _check_unembedding_split(self, ids: Tensor) -> bool:
        if (
            self.hf_model.base_model is self.hf_model
            or self.hf_model.get_output_embeddings() is None
        ):
            return False
        config = self.hf_model.config
        # Read from the config first: a soft-cap bends only large logits, which a random or
        # short check may never produce (tanh(x/30)·30 differs from x by 1e-5 at |x| = 0.3).
        if any(getattr(config, k, None) not in (None, 1, 1.0) for k in HEAD_TRANSFORMS):
            return False
        try:
            split = self.unembed(self._backbone(ids, None))
        except (TypeError, ValueError, AttributeError):  # a backbone with another signature
            return False
        # The wrapped model's own forward, without the backend's tracing around it: the split
        # reads the same modules, and only the head's arithmetic is in question.
        full = self.hf_model(input_ids=ids.to(self.device)).logits
        return split.shape == full.shape and torch.allclose(split, full, rtol=1e-4, atol=1e-4)

    @torch.no_grad()
    def iter_activations(
        self, texts: Sequence[str], hook: str, batch_size: int = 32
    ) -> Iterator[tuple[Tensor, Int[Tensor, "batch pos"]]]:
        """Activations at `hook` for `texts`, right-padded batch by batch, with their masks."""
        tok = self.tokenizer
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            enc = tok(batch, return_tensors="pt", padding=True, padding_side="right")
            yield (
                self.run(enc["input_ids"], enc["attention_mask"], hooks=[hook])[hook],
                enc["attention_mask"],
            )

    @torch.no_grad()
    def generate(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        **generate_kwargs: Any,
    ) -> Int[Tensor, "batch total"]:
        """Sample continuations with the wrapped model's own `generate` (KV cache, batched).

        Both backends share the Hugging Face model, so sampling goes through transformers'
        generation loop, which is the fastest path; hooks play no part in sampling.
        """
        kwargs = {"pad_token_id": self.tokenizer.pad_token_id, **generate_kwargs}
        # transformers 5's PreTrainedModel carries no `generate`; every causal LM mixes it in.
        model = cast("Generating", self.hf_model)
        return model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            **kwargs,
        )


class TracingBackend(Backend):
    """A backend whose every forward is one `_forward` call: `run` without autograd,
    `run_with_grad` with it (both real backends; a backend that only overrides `run`, such as a
    test double, derives from `Backend` directly)."""

    @torch.no_grad()
    def run(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> RunOutput:
        return self._forward(input_ids, attention_mask, hooks, interventions)

    def run_with_grad(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> RunOutput:
        with torch.enable_grad():
            return self._forward(input_ids, attention_mask, hooks, interventions)

    @abstractmethod
    def _forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        hooks: Sequence[str],
        interventions: Mapping[str, Intervention] | None,
    ) -> RunOutput:
        """One forward pass with `hooks` captured and `interventions` applied."""


def apply_intervention(value: Intervention, current: Tensor) -> Tensor:
    """The new activation: `value` itself, or `value(current)` when it is a function."""
    new = value(current) if callable(value) else value
    if new.shape != current.shape:
        raise ConfigError(
            f"intervention has shape {tuple(new.shape)}, activation has {tuple(current.shape)}"
        )
    return new.to(device=current.device, dtype=current.dtype)
