"""Fork-targeted training: does training the base only at the forks recover the child's gain?

See docs/science.md, *Fork-targeted training*.

After arXiv 2605.06241 (which matches a full RL run by training only at high-entropy
positions): a copy θ of the base is trained with a loss at the child's fork positions only,
and, as the control, a copy with the same loss at the same number of random positions.

* **Positions.** Per seed, the child samples completions of training problems (`train`
  problems, n each, seeded by that seed, so every seed is a full replicate with its own forks;
  on the organism a held-out set other than the evaluation's); both models are
  teacher-forced on them (`postlens.diffs.forks.compute.score_forks`) and a *fork* is a position whose
  argmaxes differ or whose JS divergence exceeds ``js_threshold``. The control draws as many
  positions uniformly among all scored positions (forks included, at their base rate), from a
  generator seeded by the same seed.
* **Loss** (ours): the forward KL from the child's next-token distribution to θ's at the chosen
  positions, ``mean_t KL(p_post(·|x_<t) ‖ p_θ(·|x_<t))``, i.e. cross-entropy toward the
  child's full distribution there (its argmax gets most of the pull, the rest of its mass is
  kept); nothing else of θ is constrained. ``loss="ce"`` uses the child's argmax as a hard
  target instead.
* **Loop.** Plain PyTorch: full-batch AdamW for `steps` steps at learning rate `lr`, in
  float32, on a deep copy of the base (the base itself is never touched). 0 steps is the base.
* **Ids.** When the two models' ids differ (`postlens.models.compat`), the training sequences are cut
  before their first id that is not shared (`keep_shared`, as fork scoring does) and both
  distributions are taken over the shared ids, renormalised there, in the loss and the
  agreement alike.
* **Read-out.** pass@1 of θ on the evaluation problems (`limit` problems, `n_eval` samples
  each, the same seed for every model), and the fraction of the child's gain recovered,
  ``(pass@1_θ − pass@1_base) / (pass@1_post − pass@1_base)``, per kind of positions and seed;
  also θ's argmax agreement with the child at the trained positions, before and after.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> small = pl.SampleConfig(n=1, limit=2, max_new_tokens=16)
    >>> cfg = ForkTrainConfig(steps=2, seeds=(0,), train=2, n_eval=1, sample=small)
    >>> res = fam.fork_train(config=cfg)["rl"]
    >>> [(r.positions, r.seed) for r in res.rows]
    [('fork', 0), ('random', 0)]
    >>> pl.Result.from_json(res.to_json()).summary() == res.summary()
    True
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from postlens.errors import ConfigError
from postlens.results.protocol import Result, clean_float
from postlens.sampling.generation import SampleConfig, sample_completions

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

LOSSES = ("kl", "ce")
POSITIONS = ("fork", "random")


@dataclass(frozen=True)
class ForkTrainConfig:
    """Settings of fork-targeted training.

    Attributes:
        steps: optimisation steps (full batch); 0 leaves θ the base.
        lr: AdamW learning rate.
        loss: ``"kl"`` (KL(post ‖ θ), the default) or ``"ce"`` (the child's argmax).
        seeds: one replicate per seed: the child's training samples (hence the forks) and
            the control's draw. Evaluation samples use ``sample.seed``, the same for every copy.
        train: training problems the child samples (on the organism: a separate held-out set).
        js_threshold: a fork's JS threshold (nats; argmax disagreements are forks anyway).
        n_eval: completions per evaluation problem (pass@1 is their pass rate).
        sample: `n` child completions per training problem, `limit` evaluation problems;
            length and temperature for training samples and evaluation; `seed` the
            evaluation samples' seed (common to the base, the child and every copy).
    """

    steps: int = 20
    lr: float = 1e-5
    loss: str = "kl"
    seeds: tuple[int, ...] = (0, 1)
    train: int = 16
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(n=2, limit=16))
    js_threshold: float = 0.1
    n_eval: int = 2

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise ConfigError("steps must be >= 0 and lr positive")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.seeds or self.train < 1 or self.n_eval < 1:
            raise ConfigError("give at least one seed, and positive train, limit and n_eval")
        if self.js_threshold <= 0:
            raise ConfigError(f"js_threshold must be positive, got {self.js_threshold}")


@dataclass(frozen=True)
class ForkTrainRow:
    """One trained copy.

    Attributes:
        positions: ``"fork"`` or ``"random"``.
        seed: the run's seed.
        n_positions: positions the loss was taken at.
        loss_before, loss_after: the loss at those positions at step 0 and after training.
        agreement_before, agreement_after: share of them where θ's argmax is the child's.
        pass_at_1: θ's pass@1 on the evaluation problems.
        recovered: (pass_at_1 − base) / (post − base) (``None`` when post = base).
    """

    positions: str
    seed: int
    n_positions: int
    loss_before: float
    loss_after: float
    agreement_before: float
    agreement_after: float
    pass_at_1: float
    recovered: float | None


@dataclass(frozen=True)
class ForkTrainSummary:
    """The headline: the mean (and spread over seeds) of the recovered fraction per kind.

    Attributes:
        base_pass_at_1, post_pass_at_1: the two ends.
        n_forks: fork positions trained at.
        recovered_forks, recovered_random: mean recovered fraction over seeds.
        recovered_forks_sd, recovered_random_sd: their standard deviation (0 with one seed).
    """

    base_pass_at_1: float
    post_pass_at_1: float
    n_forks: int
    recovered_forks: float | None
    recovered_random: float | None
    recovered_forks_sd: float | None
    recovered_random_sd: float | None


@dataclass
class ForkTrainResult(Result[ForkTrainSummary], kind="fork_train"):
    """Trained copies of the base, at the forks and at random positions, per seed.

    Attributes:
        base_pass_at_1, post_pass_at_1: the base's and the child's pass@1.
        rows: one per kind of positions and seed.
        settings: the training and sampling settings.
    """

    base_pass_at_1: float
    post_pass_at_1: float
    rows: list[ForkTrainRow]
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> ForkTrainSummary:
        def stats(kind: str) -> tuple[float | None, float | None]:
            xs = [r.recovered for r in self.rows if r.positions == kind and r.recovered is not None]
            if not xs:
                return None, None
            return statistics.fmean(xs), statistics.pstdev(xs)

        forks, rand = stats("fork"), stats("random")
        n_forks = next((r.n_positions for r in self.rows if r.positions == "fork"), 0)
        return ForkTrainSummary(self.base_pass_at_1, self.post_pass_at_1, n_forks,
                                forks[0], rand[0], forks[1], rand[1])  # fmt: skip

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows])

    def to_json(self) -> dict[str, Any]:
        rows = [{k: clean_float(v) if isinstance(v, float) else v for k, v in asdict(r).items()}
                for r in self.rows]  # fmt: skip
        return {"kind": self.kind, "base_pass_at_1": self.base_pass_at_1,
                "post_pass_at_1": self.post_pass_at_1, "rows": rows, "settings": self.settings}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ForkTrainResult:
        def num(x: Any) -> float:
            return float("nan") if x is None else float(x)

        rows = [ForkTrainRow(r["positions"], int(r["seed"]), int(r["n_positions"]),
                             num(r["loss_before"]), num(r["loss_after"]),
                             num(r["agreement_before"]), num(r["agreement_after"]),
                             num(r["pass_at_1"]),
                             None if r["recovered"] is None else float(r["recovered"]))
                for r in data["rows"]]  # fmt: skip
        return cls(float(data["base_pass_at_1"]), float(data["post_pass_at_1"]), rows,
                   dict(data.get("settings", {})))  # fmt: skip

    def plot(self) -> Any:
        from postlens.viz import causal_figures

        return causal_figures.fork_train({"post": self})

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        from postlens.viz import causal_figures

        return causal_figures.fork_train(results)


def fork_positions(
    pair: Any, seqs: Sequence[Any], js_threshold: float = 0.1
) -> tuple[Int[Tensor, "n 2"], Int[Tensor, "m 2"]]:
    """The forks ``(seq, pos)`` of `seqs` and every scored position (pos: completion token).

    Example:
        >>> import postlens as pl
        >>> from postlens.diffs.forks.compute import sample_sequences
        >>> pair = pl.load("organism:base", rl="organism:rl").pair
        >>> seqs = sample_sequences(pair, ["Q: 12+34=?\\n"], n=2, max_new_tokens=16)
        >>> forks, every = fork_positions(pair, seqs)
        >>> forks.shape[0] <= every.shape[0], every.shape[1]
        (True, 2)
    """
    from postlens.diffs.forks.compute import score_forks
    from postlens.diffs.forks.result import ForkConfig

    res = score_forks(pair, list(seqs), ForkConfig(js_threshold=js_threshold), progress=False)
    every = torch.tensor(list(zip(res.columns["seq"], res.columns["pos"], strict=True)),
                         dtype=torch.long).reshape(-1, 2)  # fmt: skip
    return every[torch.from_numpy(res.is_fork)], every


def _logits_at(model: Model, ids: Tensor, mask: Tensor, where: Tensor) -> Tensor:
    """`model`'s float32 logits at the rows/columns `where` (``[n, 2]``)."""
    out = model(input_ids=ids, attention_mask=mask).logits
    return out[where[:, 0], where[:, 1]].float()


def _shared(pair: Any, logits: Tensor) -> Tensor:
    """`logits` over the ids both models of `pair` share (no copy when all are)."""
    from postlens.data.sequences import shared_logits

    return logits if pair.tokens is None else shared_logits(pair, [logits])[0]


def scorable(pair: Any, seqs: Sequence[Any]) -> list[Any]:
    """`seqs` as fork scoring reads them: cut at their first id one model lacks, cut to the
    context, and without the ones left empty (so positions index this list)."""
    from postlens.data.sequences import context_length, keep_shared, truncate_to_context

    out, _ = keep_shared(pair, list(seqs))
    context = context_length(pair)
    out = truncate_to_context(out, context) if context else out
    return [s for s in out if s.completion_ids]


def _loss(logits: Tensor, target_logp: Tensor, kind: str) -> Tensor:
    logp = F.log_softmax(logits, dim=-1)
    if kind == "ce":
        return F.nll_loss(logp, target_logp.argmax(-1))
    return (target_logp.exp() * (target_logp - logp)).sum(-1).mean()


def train_at(
    base_model: Model,
    post_model: Model,
    pair: Any,
    seqs: Sequence[Any],
    positions: Int[Tensor, "n 2"],
    config: ForkTrainConfig,
) -> tuple[Any, dict[str, float]]:
    """A copy of `base_model` trained at `positions` of `seqs` toward `post_model` (see module).

    Returns:
        ``(theta, stats)``: the trained copy (eval mode) and its loss and argmax agreement with
        the child at the positions, before and after training.
    """
    from postlens.data.sequences import pad_batch

    # Eval mode while training too: no dropout, so 0 steps is the base and runs are deterministic.
    theta = copy.deepcopy(base_model).float().eval()
    used = sorted({int(s) for s in positions[:, 0]})
    remap = {s: i for i, s in enumerate(used)}
    ids, mask, _ = pad_batch(pair, [seqs[s] for s in used])
    # Completion token `pos` is predicted at column len(prompt) - 1 + pos.
    where = torch.tensor([[remap[int(s)], len(seqs[int(s)].prompt_ids) - 1 + int(p)]
                          for s, p in positions], dtype=torch.long).reshape(-1, 2)  # fmt: skip
    with torch.no_grad():
        target = F.log_softmax(_shared(pair, _logits_at(post_model, ids, mask, where)), dim=-1)
    choice = target.argmax(-1)

    def measure() -> tuple[float, float]:
        with torch.no_grad():
            logits = _shared(pair, _logits_at(theta, ids, mask, where))
        return float(_loss(logits, target, config.loss)), float(
            (logits.argmax(-1) == choice).float().mean()
        )

    before = measure()
    opt = torch.optim.AdamW(theta.parameters(), lr=config.lr, weight_decay=0.0)
    for _ in range(config.steps):
        opt.zero_grad()
        _loss(_shared(pair, _logits_at(theta, ids, mask, where)), target, config.loss).backward()
        opt.step()
    after = measure()
    stats = {"loss_before": before[0], "agreement_before": before[1],
             "loss_after": after[0], "agreement_after": after[1]}  # fmt: skip
    return theta, stats


def pass_rate(
    backend: Any,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    verifiers: Sequence[Any],
    cfg: ForkTrainConfig,
) -> float:
    """Share of `n_eval` completions per problem that the verifier accepts."""
    samples = sample_completions(backend, tokenizer, list(prompts), n=cfg.n_eval, progress=False,
                                 max_new_tokens=cfg.sample.max_new_tokens, temperature=cfg.sample.temperature,
                                 seed=cfg.sample.seed)  # fmt: skip
    ok = [verifiers[i // cfg.n_eval](s.completion) for i, s in enumerate(samples)]
    return sum(ok) / max(1, len(ok))


def fork_train_pair(
    pair: Any,
    train_prompts: Sequence[str],
    prompts: Sequence[str],
    verifiers: Sequence[Any],
    config: ForkTrainConfig | None = None,
) -> ForkTrainResult:
    """Fork-targeted training of one pair's base toward its child, with the random control.

    Args:
        pair: the `ModelPair` (base, child).
        train_prompts: prompts the child samples training sequences from.
        prompts, verifiers: the evaluation problems, one verifier each (formatted prompts).
        config: `ForkTrainConfig`.
    """
    from postlens.diffs.forks.compute import sample_sequences
    from postlens.pair import ModelPair

    cfg = config or ForkTrainConfig()
    base_rate = pass_rate(pair.base, pair.tokenizer, prompts, verifiers, cfg)
    post_rate = pass_rate(pair.post, pair.tokenizer, prompts, verifiers, cfg)
    gain = post_rate - base_rate
    rows, n_seqs, n_scored = [], [], []
    for seed in cfg.seeds:
        seqs = sample_sequences(pair, list(train_prompts), n=cfg.sample.n, source="post",
                                max_new_tokens=cfg.sample.max_new_tokens, temperature=cfg.sample.temperature,
                                seed=seed)  # fmt: skip
        seqs = scorable(pair, seqs)  # the positions fork scoring returns index this list
        forks, every = fork_positions(pair, seqs, cfg.js_threshold)
        n_seqs.append(len(seqs))
        n_scored.append(int(every.shape[0]))
        gen = torch.Generator().manual_seed(seed)
        drawn = every[torch.randperm(every.shape[0], generator=gen)[: forks.shape[0]]]
        for kind, where in (("fork", forks), ("random", drawn)):
            if where.shape[0] == 0:  # no fork at all: nothing to train, θ is the base
                theta, stats = copy.deepcopy(pair.base.hf_model), dict.fromkeys(
                    ("loss_before", "agreement_before", "loss_after", "agreement_after"), float("nan"))  # fmt: skip
            else:
                theta, stats = train_at(
                    pair.base.hf_model, pair.post.hf_model, pair, seqs, where, cfg
                )
            backend = ModelPair.from_models(theta, theta, pair.tokenizer).base
            rate = pass_rate(backend, pair.tokenizer, prompts, verifiers, cfg)
            recovered = (rate - base_rate) / gain if gain != 0 else None
            rows.append(ForkTrainRow(kind, seed, int(where.shape[0]), **{k: _r(v) for k, v in stats.items()},
                                     pass_at_1=rate, recovered=None if recovered is None else _r(recovered)))  # fmt: skip
            del theta, backend
    settings = {"steps": cfg.steps, "lr": cfg.lr, "loss": cfg.loss, "n_train_sequences": n_seqs,
                "n_scored_positions": n_scored, "n_problems": len(prompts),
                "n_eval": cfg.n_eval, "temperature": cfg.sample.temperature, "seed": cfg.sample.seed,
                "max_new_tokens": cfg.sample.max_new_tokens}  # fmt: skip
    return ForkTrainResult(base_rate, post_rate, rows, settings)


def _r(x: float) -> float:
    # Rounded as the JSON is, so a result read back equals the one computed.
    out = clean_float(x)
    return float("nan") if out is None else out


def fork_train_of_family(family: Any, inputs: Any, config: ForkTrainConfig, progress: bool) -> Any:
    """``fam.fork_train``: `fork_train_pair` for every child (a `ByChild`).

    Without `inputs` the family's own problems evaluate and another held-out set of them
    trains (where the family has one); with given problems the first `limit` evaluate and the
    next `train` (or, when there are no more, the same ones) train.
    """
    from postlens.results.family import ByChild

    cfg = config
    if inputs is None:
        evaluation = family.problems(None, cfg.sample.limit)
        training = family.inputs.problems(cfg.train, 1)  # another held-out set
    else:
        n_eval = cfg.sample.limit
        every = family.problems(inputs, None if n_eval is None else n_eval + cfg.train)
        evaluation = every[:n_eval]
        training = (every[n_eval:] if n_eval is not None else []) or evaluation[: cfg.train]
    prompts, verifiers = family.chat_format(evaluation)
    train = [p.prompt for p in training]
    return ByChild("fork_train", {
        child: fork_train_pair(pair, train, prompts, verifiers, cfg)
        for child, pair in family.pairs.items()
    })  # fmt: skip
