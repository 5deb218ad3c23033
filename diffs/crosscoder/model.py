"""Crosscoders: one sparse dictionary read from the same tokens' activations of several models.

A crosscoder (Lindsey et al., Anthropic 2024, "Sparse Crosscoders for Cross-Layer Features and
Model Diffing") encodes the activations ``x^m`` of models ``m = base, child(ren)`` at one hook
into one latent vector and decodes it separately for each model::

    f = act(Σ_m W_enc^m x^m + b_enc),    x̂^m = W_dec^m f + b_dec^m

Latent ``j``'s decoder norms ``‖d_j^m‖`` say in which models it exists: the relative norm
Δ_j (`relative_norm`) is ≈0 for a base-only latent, ≈0.5 for a shared one and ≈1 for a
child-only one. Two sparsity schemes:

* ``batchtopk`` (Minder et al., arXiv 2504.02922): the ``k × batch`` largest values of
  ``f_j · Σ_m ‖d_j^m‖`` in a batch are kept; at inference a latent fires when that value exceeds
  a threshold learnt during training (so a token's code does not depend on its batch): the
  mean, over the last 10% of the steps, of each batch's smallest kept value (an EMA of it, as
  SAELens keeps, lags behind in runs of a few hundred steps). Loss: the reconstruction error
  plus AuxK on dead latents. Far less prone to the L1 artifacts below.
* ``l1`` (Anthropic 2024): ReLU, loss = error + λ Σ_j f_j Σ_m ‖d_j^m‖. It produces Complete
  Shrinkage and Latent Decoupling artifacts (Minder et al.), which `postlens.diffs.crosscoder.latent_scaling`
  tests for.

What is reused and what is written here. `dictionary-learning` (0.1.0 on PyPI, the library behind
Minder et al.) was checked: its wheel has SAE trainers but no crosscoder, and it requires
``nnsight>=0.3,<0.4`` where postlens pins 0.8.1, so it cannot be installed beside postlens.
SAELens 6.54.12 has no crosscoder (its crosscoder pull request is unmerged) and its
`TrainingSAE` / `SAETrainer` assume one input and one decoder, so the crosscoder module and its
training loop are written here (one encoder and one decoder per model over a shared latent).
What is taken from SAELens is its conventions, each
checked against its source: the BatchTopK selection of `sae_lens.saes.batchtopk_sae.BatchTopK`
(the ``k × batch`` largest values of a batch kept; `BatchTopK` here is the same six lines, and a
test checks it against SAELens's on the same input), the inference rule of
`BatchTopKTrainingSAE` (a running float64 threshold moved 1% toward the smallest kept value each
step) and the normalisation of `sae_lens.training.activation_scaler.ActivationScaler` (factor
√d / mean ‖x‖, so every model's activations have the same mean norm and decoder norms of
different models are comparable). The classes themselves are not imported: importing SAELens
takes seconds (it loads TransformerLens and its whole model zoo), it is an optional extra the
quick-start install lacks, `ActivationScaler` holds a single factor (a crosscoder needs one per
model) and its estimate always draws a tqdm bar, where postlens shows progress on a terminal
only.

Example:
    >>> cfg = CrosscoderConfig(n_latents=16, k=2)
    >>> cc = Crosscoder(n_models=2, d_model=8, config=cfg)
    >>> x = torch.randn(5, 2, 8)
    >>> f = cc.encode(x)
    >>> f.shape, cc.decode(f).shape, cc.relative_norm(1).shape
    (torch.Size([5, 16]), torch.Size([5, 2, 8]), torch.Size([16]))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from postlens.errors import CheckpointError, ConfigError

Kind = Literal["batchtopk", "l1"]


@dataclass(frozen=True)
class CrosscoderConfig:
    """How to train a crosscoder and read its latents.

    Attributes:
        hook: the TransformerLens hook read in every model.
        kind: ``"batchtopk"`` or ``"l1"``.
        n_latents: dictionary size (default ``expansion × d_model``).
        expansion: latents per residual dimension when `n_latents` is not given.
        k: BatchTopK: mean active latents per token.
        l1_coefficient: L1: the penalty λ (reached after `l1_warmup` of the steps).
        l1_warmup: L1: share of the steps over which λ rises linearly from 0.
        training_tokens: tokens seen in training (the corpus is cycled as needed).
        batch_tokens: tokens per optimizer step.
        lr: Adam learning rate (constant, then linear decay over the last 20% of steps).
        texts_per_chunk: texts run through the models at once; their tokens are shuffled
            together, so this is also the mixing buffer.
        max_tokens: texts are cut to this many tokens.
        skip_first: leave out each text's first position, by position: the attention sink
            of a real LM carries massive activations there whether or not it holds a BOS token.
        norm_batches: batches used to estimate each model's normalisation.
        checkpoint_every: steps between checkpoints (with the optimizer state).
        aux_coefficient: BatchTopK: weight of the AuxK loss on dead latents (Gao et al.'s
            1/32, also dictionary-learning's crosscoder default).
        dead_steps: BatchTopK: a latent silent for more steps than this is dead for AuxK.
        eval_fraction: share of the texts held out for quality, frequencies, contexts and ν.
        n_contexts: top contexts kept per latent.
        base_only_max: Δ at or below this: base-only.
        shared_range: Δ inside this range: shared.
        child_only_min: Δ at or above this: child-only (Minder et al.'s 0.1 / 0.4–0.6 / 0.9).
        nu_threshold: a child-only (base-only) latent whose ν^ε or ν^r exceeds this is flagged
            as a likely artifact (shared latents have ν ≈ 1, genuine ones ≈ 0).
        cofire_jaccard: two latents whose firing sets overlap at least this much (Jaccard, on
            the held-out tokens) are also read as one direction (`cofiring`; ours).
        persona_cos: decoder |cosine| with a persona direction to call a latent aligned.
        checkpoint: a folder for the checkpoints and the final crosscoder (a run there is
            resumed); ``None``: kept in memory only.
        seed: initialisation and data order.
    """

    hook: str = "blocks.2.hook_resid_post"
    kind: Kind = "batchtopk"
    n_latents: int | None = None
    expansion: int = 8
    k: float = 16.0
    l1_coefficient: float = 1.0
    l1_warmup: float = 0.05
    training_tokens: int = 200_000
    batch_tokens: int = 1024
    lr: float = 1e-3
    texts_per_chunk: int = 64
    max_tokens: int = 128
    skip_first: bool = True
    norm_batches: int = 4
    checkpoint_every: int = 200
    aux_coefficient: float = 1 / 32
    dead_steps: int = 50
    eval_fraction: float = 0.2
    n_contexts: int = 5
    base_only_max: float = 0.1
    shared_range: tuple[float, float] = (0.4, 0.6)
    child_only_min: float = 0.9
    nu_threshold: float = 0.5
    cofire_jaccard: float = 0.9
    persona_cos: float = 0.5
    checkpoint: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("batchtopk", "l1"):
            raise ConfigError(f"unknown crosscoder kind {self.kind!r}; use batchtopk or l1")
        if self.n_latents is not None and self.n_latents < 2 or self.expansion < 1:
            raise ConfigError("need n_latents >= 2 (or expansion >= 1)")
        if self.k <= 0 or self.l1_coefficient < 0 or not 0 <= self.l1_warmup < 1:
            raise ConfigError("need k > 0, l1_coefficient >= 0 and 0 <= l1_warmup < 1")
        if self.batch_tokens < 1 or self.training_tokens < self.batch_tokens:
            raise ConfigError("need 1 <= batch_tokens <= training_tokens")
        if self.lr <= 0 or self.texts_per_chunk < 1 or self.max_tokens < 2:
            raise ConfigError("need lr > 0, texts_per_chunk >= 1 and max_tokens >= 2")
        if self.norm_batches < 1 or self.checkpoint_every < 1 or self.n_contexts < 0:
            raise ConfigError("need norm_batches >= 1, checkpoint_every >= 1, n_contexts >= 0")
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        lo, hi = self.shared_range
        if not 0 <= self.base_only_max < lo <= 0.5 <= hi < self.child_only_min <= 1:
            raise ConfigError("need 0 <= base_only_max < shared_range[0] <= 0.5 <= shared_range[1] < child_only_min <= 1")  # fmt: skip
        if self.aux_coefficient < 0 or self.dead_steps < 1:
            raise ConfigError("need aux_coefficient >= 0 and dead_steps >= 1")
        if self.nu_threshold <= 0 or not 0 < self.persona_cos <= 1:
            raise ConfigError("need nu_threshold > 0 and 0 < persona_cos <= 1")
        if not 0 < self.cofire_jaccard <= 1:
            raise ConfigError(f"cofire_jaccard must be in (0, 1], got {self.cofire_jaccard}")

    def latents(self, d_model: int) -> int:
        """The dictionary size for models of width `d_model`."""
        return self.n_latents or self.expansion * d_model

    @property
    def steps(self) -> int:
        return self.training_tokens // self.batch_tokens

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrosscoderConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "shared_range" in values:
            values["shared_range"] = tuple(values["shared_range"])
        return cls(**values)


class BatchTopK(nn.Module):
    """Keep the ``k × batch`` largest (ReLU'd) values of a batch, zero the rest (SAELens's rule).

    Example:
        >>> BatchTopK(1)(torch.tensor([[3.0, 1.0], [2.0, 0.5]])).tolist()
        [[3.0, 0.0], [2.0, 0.0]]
    """

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Float[Tensor, "*batch latent"]) -> Float[Tensor, "*batch latent"]:
        flat = x.relu().flatten()
        top = torch.topk(flat, int(self.k * x.shape[:-1].numel()))
        return torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(x.shape)


class Crosscoder(nn.Module):
    """One encoder and one decoder per model over a shared latent space.

    Attributes:
        W_enc: ``[model, d_model, latent]`` encoders.
        W_dec: ``[latent, model, d_model]`` decoders (``W_dec[j, m]`` is ``d_j^m``).
        b_enc: ``[latent]``; b_dec: ``[model, d_model]``.
        threshold: BatchTopK: the inference threshold on ``f_j · Σ_m ‖d_j^m‖``.
        scales: each model's normalisation factor (activations are multiplied by it).
    """

    # Buffers (register_buffer), typed for the checker: torch types them as Tensor | Module.
    threshold: Tensor
    scales: Tensor
    steps_since_fired: Tensor

    def __init__(self, n_models: int, d_model: int, config: CrosscoderConfig) -> None:
        super().__init__()
        self.config, self.n_models, self.d_model = config, n_models, d_model
        n = config.latents(d_model)
        gen = torch.Generator().manual_seed(config.seed)
        # Anthropic's initialisation: random unit directions at a small norm per model, and the
        # encoder the decoder's transpose, so every latent starts reading what it writes.
        dec = torch.randn(n, n_models, d_model, generator=gen)
        dec = 0.1 * dec / dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(dec)
        self.W_enc = nn.Parameter(dec.permute(1, 2, 0).clone())
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.b_dec = nn.Parameter(torch.zeros(n_models, d_model))
        # float64, as SAELens keeps its threshold: an EMA of small values drifts in float32
        self.register_buffer("threshold", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("scales", torch.ones(n_models))
        # steps since each latent last fired: AuxK's dead latents (saved, so a resume is exact)
        self.register_buffer("steps_since_fired", torch.zeros(n, dtype=torch.long))
        self._top_k = BatchTopK(config.k)
        self.last_kept_min: float | None = None

    @property
    def n_latents(self) -> int:
        return self.W_dec.shape[0]

    def decoder_norms(self) -> Float[Tensor, "latent model"]:
        """``‖d_j^m‖`` for every latent and model."""
        return self.W_dec.norm(dim=-1)

    def relative_norm(self, model: int, reference: int = 0) -> Float[Tensor, " latent"]:
        """Δ_j = ½((‖d_j^model‖ − ‖d_j^ref‖) / max(‖d_j^model‖, ‖d_j^ref‖) + 1).

        ≈0: the latent exists only in `reference` (the base), ≈0.5 in both, ≈1 only in
        `model`. A latent with both norms zero gets 0.5.
        """
        norms = self.decoder_norms().detach()
        a, b = norms[:, model], norms[:, reference]
        return 0.5 * ((a - b) / torch.maximum(a, b).clamp_min(1e-12) + 1)

    def pre_acts(self, x: Float[Tensor, "batch model d_model"]) -> Float[Tensor, "batch latent"]:
        return torch.einsum("bmd,mdl->bl", x, self.W_enc) + self.b_enc

    def encode(self, x: Float[Tensor, "batch model d_model"]) -> Float[Tensor, "batch latent"]:
        """Latent activations of normalised activations `x` (inference rule, see the module)."""
        acts = self.pre_acts(x).relu()
        if self.config.kind == "l1":
            return acts
        score = acts * self.decoder_norms().sum(-1)
        return acts * (score > self.threshold.to(acts.dtype))

    def encode_train(
        self, x: Float[Tensor, "batch model d_model"]
    ) -> Float[Tensor, "batch latent"]:
        """Latent activations in training: BatchTopK's batch-level selection (or ReLU for L1)."""
        acts = self.pre_acts(x).relu()
        if self.config.kind == "l1":
            return acts
        score = acts * self.decoder_norms().sum(-1)
        kept = self._top_k(score) > 0
        self._update_threshold(score[kept])
        return acts * kept

    @torch.no_grad()
    def _update_threshold(self, kept: Tensor, rate: float = 0.01) -> None:
        """SAELens's rule: move the threshold 1% toward the smallest kept value of the batch
        (`train_crosscoder` sets the final one to that value's mean over the last steps)."""
        if kept.numel():
            low = kept.min().double()
            self.last_kept_min = float(low)
            first = self.threshold == 0  # start from the first batch's value, not from 0
            self.threshold.copy_(torch.where(first, low, (1 - rate) * self.threshold + rate * low))

    def decode(self, f: Float[Tensor, "batch latent"]) -> Float[Tensor, "batch model d_model"]:
        return torch.einsum("bl,lmd->bmd", f, self.W_dec) + self.b_dec

    def normalise(self, x: Float[Tensor, "batch model d_model"]) -> Float[Tensor, "batch model d_model"]:  # fmt: skip
        """Raw activations → the crosscoder's scale (each model's `ActivationScaler` factor)."""
        return x * self.scales.view(1, -1, 1).to(x.dtype)

    def loss(self, x: Float[Tensor, "batch model d_model"], l1: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """(total, reconstruction, sparsity or AuxK) on normalised `x`; `l1` is the current λ."""
        f = self.encode_train(x)
        x_hat = self.decode(f)
        mse = (x - x_hat).pow(2).sum((-1, -2)).mean()
        with torch.no_grad():
            fired = (f > 0).any(0)
            self.steps_since_fired.copy_(torch.where(fired, 0, self.steps_since_fired + 1))
        if self.config.kind == "batchtopk":
            aux = self._aux_loss(x, x_hat)
            return mse + self.config.aux_coefficient * aux, mse, aux
        sparsity = (f * self.decoder_norms().sum(-1)).sum(-1).mean()
        return mse + l1 * sparsity, mse, sparsity

    def _aux_loss(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """AuxK (Gao et al. 2024, as SAELens's `calculate_topk_aux_loss`): the top ``k_aux``
        dead latents of each token reconstruct what the live ones left, without the bias."""
        dead = self.steps_since_fired > self.config.dead_steps
        n_dead = int(dead.sum())
        if n_dead == 0:
            return x.new_zeros(())
        k_aux = self.n_models * self.d_model // 2  # SAELens: half the input width
        scale, k_aux = min(n_dead / k_aux, 1.0), min(k_aux, n_dead)
        pre = torch.where(dead[None], self.pre_acts(x), -torch.inf)
        top = pre.topk(k_aux, sorted=False)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        recon = torch.einsum("bl,lmd->bmd", acts, self.W_dec)
        return scale * (recon - (x - x_hat).detach()).pow(2).sum((-1, -2)).mean()


def scaling_factors(batches: list[Tensor]) -> Float[Tensor, " model"]:
    """Each model's factor √d / mean ‖x‖ (SAELens's normalisation) from raw batches.

    Example:
        >>> scaling_factors([torch.full((4, 2, 9), 1.0)]).tolist()  # ‖x‖ = 3 = √9: factor 1
        [1.0, 1.0]
    """
    x = torch.cat(batches).float()
    mean_norm = x.norm(dim=-1).mean(0).clamp_min(1e-12)
    return x.shape[-1] ** 0.5 / mean_norm


def save_crosscoder(
    cc: Crosscoder, path: str | Path, models: list[str], provenance: dict[str, Any] | None = None,
    extra: dict[str, Tensor] | None = None, state: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """``config.json`` (config, model names, provenance, training state) + safetensors.

    Nothing is pickled: tensors go to safetensors, everything else to JSON.

    Example:
        >>> cc = Crosscoder(2, 8, CrosscoderConfig(n_latents=4))
        >>> _ = save_crosscoder(cc, "cc", ["base", "rl"], {"hook": "blocks.0.hook_resid_post"})
        >>> back, meta = load_crosscoder("cc")
        >>> meta["models"], torch.equal(back.W_dec, cc.W_dec)
        (['base', 'rl'], True)
    """
    from postlens.probes.provenance import save_artifact

    config = {
        "what": "postlens crosscoder", "config": cc.config.to_json(), "models": list(models),
        "d_model": cc.d_model, "provenance": provenance or {}, "state": state or {},
    }  # fmt: skip
    tensors = {f"crosscoder.{k}": v for k, v in cc.state_dict().items()} | (extra or {})
    return save_artifact(path, config, tensors)


def load_crosscoder(path: str | Path) -> tuple[Crosscoder, dict[str, Any]]:
    """A crosscoder saved by `save_crosscoder`, and its JSON metadata (with ``"tensors"``: the
    other tensors saved beside it, e.g. the optimizer state)."""
    from postlens.probes.provenance import load_artifact

    meta, tensors = load_artifact(path)
    if meta.get("what") != "postlens crosscoder":
        raise CheckpointError(f"{path}: not a postlens crosscoder")
    cc = Crosscoder(
        len(meta["models"]), meta["d_model"], CrosscoderConfig.from_json(meta["config"])
    )
    own = {
        k.removeprefix("crosscoder."): v for k, v in tensors.items() if k.startswith("crosscoder.")
    }
    cc.load_state_dict(own)
    meta["tensors"] = {k: v for k, v in tensors.items() if not k.startswith("crosscoder.")}
    return cc, meta
