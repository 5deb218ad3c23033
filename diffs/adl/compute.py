"""Activation Difference Lens: the traces a fine-tune leaves on unrelated text.

See docs/science.md, *Activation Difference Lens*.

After Minder et al. (2025), "narrow fine-tuning leaves clearly readable traces": run the base
and the child on generic text that has nothing to do with the fine-tune, and take per layer ℓ
the mean difference of the residual stream over the first `k` token positions,
``δ_ℓ = mean(h_post − h_base)`` (``blocks.ℓ.hook_resid_post``). Massive-activation positions
(`postlens.diffs.activations.massive`: the attention sink at position 0 of a real LM, with or
without a BOS token) are left out of the mean by position, and counted; without that, one
position's norm, hundreds of times the others', is all δ says. Three readings of δ:

* its norm per layer, relative to the base's own mean norm there (where the trace is largest);
* its top tokens under the logit lens of each model (that model's own final norm, then its
  unembedding, applied to δ_ℓ as if it were a residual; the lens of `postlens.diffs.activations.compute`);
* steering with α·δ_ℓ (`postlens.sampling.steering`, every position) on unrelated prompts, the base by
  default: the steered samples, and on the verifiable problems the pass rate and the
  classifier's label shares (on the organism its persona styles), per α.

On the organism the generic text is its filler sentences (its default inputs' texts), which
neither SFT nor RL trained on.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> small = pl.SampleConfig(n=1, max_new_tokens=8)
    >>> cfg = ADLConfig(n_texts=4, alphas=(0.0, 2.0), limit=2, n_prompts=1, sample=small)
    >>> res = fam.adl(config=cfg)["rl"]
    >>> res.layer, len(res.norms), [r.alpha for r in res.rows]
    (2, 4, [0.0, 2.0])
    >>> pl.Result.from_json(res.to_json()).summary() == res.summary()
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from postlens.backends.arch import logit_lens
from postlens.data.defaults import InputProvider
from postlens.diffs.activations.massive import MASSIVE_RATIO, massive_positions
from postlens.diffs.causal.sweep import Classifier, behaviour
from postlens.errors import ConfigError
from postlens.hooks import resid_post
from postlens.results.protocol import Result, clean_float
from postlens.sampling.generation import SampleConfig, sample_completions
from postlens.sampling.steering import steering

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

#: Generic text for models other than the organism (plain sentences unrelated to any task).
GENERIC_TEXTS = (
    "The weather was mild and the streets were quiet in the early morning.",
    "She opened the window and looked at the garden for a while.",
    "A small boat drifted slowly along the river past the old mill.",
    "They walked to the market and bought bread, cheese and apples.",
    "The library closes at six, so we should leave before it gets dark.",
    "His dog likes to sleep in the sun near the front door.",
    "On the hill there is a house with a red roof and a tall tree.",
    "We read a book together and then went out for a walk.",
)
STEERED = ("base", "post")


@dataclass(frozen=True)
class ADLConfig:
    """Settings of the Activation Difference Lens.

    Attributes:
        k: the first token positions of each text averaged over (Minder et al.: ≈5).
        massive_ratio: a position whose base residual norm, at some layer, exceeds this
            multiple of the layer's median is left out (`massive_positions`); ``None`` keeps all.
        n_texts: generic texts (the family's own, ``fam.inputs.texts``; else `GENERIC_TEXTS`).
        layer: the layer read and steered (default: the middle one, ``n_layers // 2``).
        top: tokens listed per layer and model.
        alphas: multiples of δ_ℓ added when steering (α = 1 adds the mean shift itself).
        steered: which model is steered, ``"base"`` or ``"post"``.
        limit: verifiable problems sampled per α (pass rate and shares).
        n_prompts: unrelated prompts (starts of generic texts) sampled per α, kept as text.
        sample: `n` completions per problem and α, their length, temperature and seed
            (which also draws the texts).
    """

    k: int = 5
    massive_ratio: float | None = MASSIVE_RATIO
    n_texts: int = 32
    layer: int | None = None
    top: int = 10
    alphas: tuple[float, ...] = (0.0, 4.0, 8.0)
    steered: str = "base"
    limit: int = 8
    n_prompts: int = 3
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(n=1))

    def __post_init__(self) -> None:
        if self.k < 1 or self.n_texts < 1 or self.top < 1:
            raise ConfigError("k, n_texts and top must be positive")
        if self.massive_ratio is not None and self.massive_ratio <= 1:
            raise ConfigError(f"massive_ratio must be > 1 (or None), got {self.massive_ratio}")
        if self.layer is not None and self.layer < 0:
            raise ConfigError(f"layer must be >= 0, got {self.layer}")
        if not self.alphas:
            raise ConfigError("give at least one alpha")
        if self.steered not in STEERED:
            raise ConfigError(f"steered must be one of {', '.join(STEERED)}, got {self.steered!r}")
        if self.limit < 0 or self.n_prompts < 0:
            raise ConfigError("limit and n_prompts must be >= 0")


@dataclass(frozen=True)
class ADLRow:
    """What steering with α·δ gives.

    Attributes:
        alpha: the multiple of δ added.
        pass_rate: share of the problems' completions the verifier accepts (``None``: none run).
        shares: classifier label → share of those completions.
        samples: the steered completions of the unrelated prompts.
    """

    alpha: float
    pass_rate: float | None
    shares: dict[str, float] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ADLSummary:
    """The headline of one child's lens.

    Attributes:
        layer: the layer read and steered.
        k, n_texts: positions per text and texts averaged over.
        delta_norm: ‖δ_ℓ‖ at `layer`.
        rel_norm: ‖δ_ℓ‖ / mean ‖h_base‖ there.
        peak_layer: the layer of the largest relative norm.
        top_base, top_post: δ_ℓ's top tokens under the base's and the child's lens.
        pass_rate_at_0: pass rate at the smallest |α| (``None``: no problems run).
    """

    layer: int
    k: int
    n_texts: int
    delta_norm: float
    rel_norm: float
    peak_layer: int
    top_base: list[str]
    top_post: list[str]
    pass_rate_at_0: float | None


@dataclass
class ADLResult(Result[ADLSummary], kind="adl"):
    """δ per layer, its logit-lens tokens in each model, and steering with α·δ.

    Attributes:
        layer: the layer read and steered.
        k, n_texts: positions per text and texts averaged over.
        norms: ‖δ_ℓ‖ per layer.
        base_norms: mean ‖h_base‖ over the same positions, per layer.
        lens: model (``"base"``, ``"post"``) → per layer the top tokens of δ_ℓ (token, logit).
        delta: δ at `layer` (d_model numbers).
        rows: one per α.
        settings: the sampling settings.
        massive: per position j < k, how many texts had it left out as a massive activation.
    """

    layer: int
    k: int
    n_texts: int
    norms: list[float]
    base_norms: list[float]
    lens: dict[str, list[list[tuple[str, float]]]]
    delta: list[float]
    rows: list[ADLRow]
    settings: dict[str, Any] = field(default_factory=dict)
    massive: list[int] = field(default_factory=list)

    def top_tokens(self, model: str = "post", layer: int | None = None) -> list[str]:
        """δ's top tokens at `layer` (default: the result's) under `model`'s lens."""
        return [t for t, _ in self.lens[model][self.layer if layer is None else layer]]

    def summary(self) -> ADLSummary:
        rel = [n / b if b > 0 else 0.0 for n, b in zip(self.norms, self.base_norms, strict=True)]
        first = min(self.rows, key=lambda r: abs(r.alpha)) if self.rows else None
        return ADLSummary(
            self.layer, self.k, self.n_texts, self.norms[self.layer], rel[self.layer],
            max(range(len(rel)), key=rel.__getitem__), self.top_tokens("base")[:5],
            self.top_tokens("post")[:5], first.pass_rate if first else None,
        )  # fmt: skip

    def to_frame(self) -> Any:
        """One row per layer: the norms and each model's top tokens."""
        import pandas as pd

        return pd.DataFrame([
            {"layer": i, "delta_norm": n, "rel_norm": n / b if b > 0 else 0.0,
             **{f"top_{m}": " ".join(repr(t) for t, _ in self.lens[m][i][:5]) for m in self.lens}}
            for i, (n, b) in enumerate(zip(self.norms, self.base_norms, strict=True))
        ])  # fmt: skip

    def steer_frame(self) -> Any:
        """One row per α: pass rate, label shares and the first steered sample."""
        import pandas as pd

        frame = pd.DataFrame([
            {"alpha": r.alpha, "pass_rate": r.pass_rate,
             **{f"share_{k}": v for k, v in r.shares.items()},
             "sample": r.samples[0] if r.samples else ""}
            for r in self.rows
        ])  # fmt: skip
        shares = [c for c in frame.columns if c.startswith("share_")]
        return frame.fillna(dict.fromkeys(shares, 0.0))

    def to_json(self) -> dict[str, Any]:
        lens = {m: [[[t, clean_float(v)] for t, v in layer] for layer in per] for m, per in self.lens.items()}  # fmt: skip
        rows = [{**asdict(r), "pass_rate": clean_float(r.pass_rate)} for r in self.rows]
        return {"kind": self.kind, "layer": self.layer, "k": self.k, "n_texts": self.n_texts,
                "norms": [clean_float(x) for x in self.norms],
                "base_norms": [clean_float(x) for x in self.base_norms], "lens": lens,
                "delta": [clean_float(x) for x in self.delta], "rows": rows,
                "settings": self.settings, "massive": self.massive}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ADLResult:
        def num(x: Any) -> float:
            return float("nan") if x is None else float(x)

        lens = {m: [[(str(t), num(v)) for t, v in layer] for layer in per]
                for m, per in data["lens"].items()}  # fmt: skip
        rows = [ADLRow(float(r["alpha"]), None if r["pass_rate"] is None else float(r["pass_rate"]),
                       {k: float(v) for k, v in r["shares"].items()}, list(r["samples"]))
                for r in data["rows"]]  # fmt: skip
        return cls(int(data["layer"]), int(data["k"]), int(data["n_texts"]),
                   [num(x) for x in data["norms"]], [num(x) for x in data["base_norms"]], lens,
                   [num(x) for x in data["delta"]], rows, dict(data.get("settings", {})),
                   [int(x) for x in data.get("massive", [])])  # fmt: skip

    def plot(self) -> Any:
        from postlens.viz import causal_figures

        return causal_figures.adl({"post": self})

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        from postlens.viz import causal_figures

        return causal_figures.adl(results)


def generic_texts(provider: InputProvider, n: int, seed: int = 0) -> list[str]:
    """`n` generic texts: the family's own (``fam.inputs.texts``), else `GENERIC_TEXTS` cycled.

    Example:
        >>> from postlens.data.defaults import InputProvider
        >>> generic_texts(InputProvider(), 1)[0][:11]
        'The weather'
    """
    found = provider.texts(n, seed)
    return (
        list(found)
        if found is not None
        else [GENERIC_TEXTS[i % len(GENERIC_TEXTS)] for i in range(n)]
    )


@torch.no_grad()
def activation_differences(
    pair: Any, texts: Sequence[str], k: int = 5, massive_ratio: float | None = MASSIVE_RATIO
) -> tuple[Float[Tensor, "layer d_model"], Float[Tensor, " layer"], list[int]]:
    """δ_ℓ = mean(h_post − h_base) over the first `k` positions of `texts`, for every layer,
    massive-activation positions of the base left out (none when `massive_ratio` is ``None``).

    Returns:
        ``(deltas, base_norms, massive)``: δ per layer, the mean ‖h_base‖ over the same
        positions, and per position j < k the number of texts whose position j was left out.

    Raises:
        ConfigError: every one of the first `k` positions is massive (nothing left to average).

    Example:
        >>> import postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl").pair
        >>> deltas, norms, massive = activation_differences(pair, ["the cat sees a cup."], k=3)
        >>> tuple(deltas.shape), bool((norms > 0).all()), massive
        ((4, 128), True, [0, 0, 0])
    """
    batch = pair.tokenize(list(texts), padding_side="right")
    hooks = [resid_post(i) for i in range(pair.n_layers)]
    base, post = pair.run_both(batch, hooks)
    real = batch.attention_mask.bool()
    dropped = torch.zeros_like(real)
    if massive_ratio is not None:
        all_norms = torch.stack([base[name].float().norm(dim=-1) for name in hooks])
        dropped = massive_positions(all_norms, real, massive_ratio)
    # Right padding: the first k columns are the texts' first k tokens wherever the mask is 1.
    mask = (real & ~dropped)[:, :k].float().unsqueeze(-1)
    if mask.sum() == 0:
        raise ConfigError(
            f"every one of the first {k} positions of the texts is a massive activation; "
            "raise k, or give massive_ratio=None to keep them"
        )
    deltas, norms = [], []
    for name in hooks:
        hb, hp = base[name][:, :k].float(), post[name][:, :k].float()
        deltas.append(((hp - hb) * mask).sum((0, 1)) / mask.sum())
        norms.append((hb.norm(dim=-1, keepdim=True) * mask).sum() / mask.sum())
    return torch.stack(deltas), torch.stack(norms), dropped[:, :k].sum(0).tolist()


@torch.no_grad()
def lens_tokens(
    backend: Any, tokenizer: Tokenizer, vectors: Float[Tensor, "layer d_model"], top: int = 10
) -> list[list[tuple[str, float]]]:
    """Each vector's top tokens under `backend`'s logit lens (its final norm, then unembedding).

    Example:
        >>> import torch, postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl").pair
        >>> len(lens_tokens(pair.base, pair.tokenizer, torch.randn(2, 128), top=3)[1])
        3
    """
    logits = logit_lens(backend.hf_model)(vectors).float()
    values, ids = logits.topk(min(top, logits.shape[-1]), dim=-1)
    return [
        [
            (str(tokenizer.decode([int(i)])), float(v))
            for i, v in zip(row_ids, row_vals, strict=True)
        ]
        for row_ids, row_vals in zip(ids, values, strict=True)
    ]


def adl_pair(
    pair: Any,
    texts: Sequence[str],
    config: ADLConfig | None = None,
    prompts: Sequence[str] = (),
    verifiers: Sequence[Any] = (),
    unrelated: Sequence[str] = (),
    classifier: Classifier | None = None,
) -> ADLResult:
    """The lens of one pair: δ per layer, its top tokens in each model, steering with α·δ.

    Args:
        pair: the `ModelPair` (base, child).
        texts: the generic texts δ is averaged over.
        config: `ADLConfig`.
        prompts, verifiers: verifiable problems sampled per α (may be empty).
        unrelated: unrelated prompts sampled per α, kept as text.
        classifier: completion → label, for the problems' completions.
    """
    cfg = config or ADLConfig()
    layer = pair.n_layers // 2 if cfg.layer is None else cfg.layer
    if layer >= pair.n_layers:
        raise ConfigError(f"layer {layer} out of range (the models have {pair.n_layers} blocks)")
    deltas, base_norms, massive = activation_differences(pair, texts, cfg.k, cfg.massive_ratio)
    lens = {m: lens_tokens(pair[m], pair.tokenizer, deltas, cfg.top) for m in ("base", "post")}
    steered = pair[cfg.steered]
    kwargs: dict[str, Any] = {"n": cfg.sample.n, "max_new_tokens": cfg.sample.max_new_tokens, "temperature": cfg.sample.temperature,
              "seed": cfg.sample.seed, "progress": False}  # fmt: skip
    rows = []
    for alpha in cfg.alphas:
        with steering(steered, deltas[layer], layer, alpha):
            free = sample_completions(
                steered, pair.tokenizer, list(unrelated), **{**kwargs, "n": 1}
            )
            solved = sample_completions(steered, pair.tokenizer, list(prompts), **kwargs)
        passed, shares = (
            behaviour(solved, verifiers, cfg.sample.n, classifier) if solved else (None, {})
        )
        rows.append(ADLRow(float(alpha), passed, shares, [s.completion for s in free]))
    settings = {"steered": cfg.steered, "n": cfg.sample.n, "n_problems": len(prompts),
                "temperature": cfg.sample.temperature, "seed": cfg.sample.seed,
                "max_new_tokens": cfg.sample.max_new_tokens}  # fmt: skip
    # Rounded as the JSON is, so a result read back equals the one computed.
    lens = {m: [[(t, _r(v)) for t, v in per] for per in layers] for m, layers in lens.items()}
    return ADLResult(layer, cfg.k, len(texts), [_r(x) for x in deltas.norm(dim=-1).tolist()],
                     [_r(x) for x in base_norms.tolist()], lens,
                     [_r(x) for x in deltas[layer].tolist()], rows, settings, massive)  # fmt: skip


def _r(x: float) -> float:
    out = clean_float(x)
    return float("nan") if out is None else out


def adl_of_family(family: Any, inputs: Any, config: ADLConfig, progress: bool) -> Any:
    """``fam.adl``: `adl_pair` for every child (a `ByChild`), on the same texts and prompts.

    `inputs` are the generic texts (default: the family's own, ``fam.inputs.texts``, else
    `GENERIC_TEXTS`); the unrelated prompts are the first words of other generic texts; the
    family's problems (when it has them) and classifier measure the steered behaviour.
    """
    from postlens.results.family import ByChild

    cfg = config
    texts = (
        list(inputs)
        if inputs is not None
        else generic_texts(family.inputs, cfg.n_texts, cfg.sample.seed)
    )
    # Unrelated prompts: the starts of other generic texts (drawn with another seed).
    others = generic_texts(family.inputs, cfg.n_prompts, cfg.sample.seed + 1)
    unrelated = [" ".join(t.split()[:3]) for t in others]
    prompts, verifiers = [], []
    if cfg.limit and (found := family.inputs.problems(cfg.limit)) is not None:
        prompts, verifiers = family.chat_format(found)
    classifier = family.inputs.classifier()
    return ByChild("adl", {
        child: adl_pair(pair, texts, cfg, prompts, verifiers, unrelated, classifier)
        for child, pair in family.pairs.items()
    })  # fmt: skip
