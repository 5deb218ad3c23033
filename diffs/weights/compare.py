"""Weight shifts: how much, and where, post-training moved the weights (arXiv 2505.11711, 2507.10616).

Both checkpoints are streamed tensor by tensor from their safetensors files (memory-mapped), so
no model is built and peak memory stays at a few chunks of the largest tensor. Per tensor:
relative change ‖ΔW‖_F/‖W_base‖_F, max and mean |Δ|, the fraction of entries changed exactly
and beyond a tolerance (update sparsity = 1 − that fraction), and optionally the effective rank
of ΔW and its overlap with W_base's principal subspace. Given two children (SFT and RL), the
cosine between their updates says whether they moved the same weights the same way.

Weight-change size is not behavioural change (RL's Razor): read these numbers next to the
behavioural divergence of `postlens.diffs.forks.compute`.

Example:
    >>> diff = compare_weights("organism:base", "organism:rl", progress=False)
    >>> 0 < diff.summary().rel_norm < 1, list(diff.by_module().columns[:2])
    (True, ['module', 'numel'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from postlens.diffs.weights import adapters as lora
from postlens.diffs.weights.checkpoint_io import CheckpointReader, TensorSource, open_checkpoint
from postlens.diffs.weights.names import classify, token_embedding
from postlens.diffs.weights.rank import RankStats
from postlens.diffs.weights.result import (  # noqa: F401  (re-exported)
    TensorDiff,
    WeightDiff,
    WeightSummary,
)
from postlens.diffs.weights.stats import RawTensor, UpdateStats
from postlens.errors import ConfigError, NotSupportedError
from postlens.progress import show_progress
from postlens.results.protocol import Result


@dataclass(frozen=True)
class WeightDiffConfig:
    """Settings of a weight comparison.

    Attributes:
        atol: |Δ| above this counts as changed in ``frac_changed_tol`` (bf16 storage hides
            smaller updates anyway).
        rank: also compute the effective rank and subspace overlap of 2-D updates (slower).
        rank_r: size of the top singular subspace compared.
    """

    atol: float = 1e-5
    rank: bool = False
    rank_r: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.atol < math.inf:  # NaN fails too
            raise ConfigError(f"atol must be a finite number >= 0, got {self.atol}")
        if self.rank_r < 1:
            raise ConfigError("rank_r must be >= 1")


def _row(
    name: str, shape: tuple[int, ...], stats: UpdateStats, rank: RankStats | None,
    bound: int | None = None,
) -> TensorDiff:  # fmt: skip
    """The reported figures of one tensor's update."""
    layer, module = classify(name)
    n = max(1, stats.numel)
    return TensorDiff(
        name=name,
        layer=layer,
        module=module,
        shape=shape,
        numel=stats.numel,
        rel_norm=stats.rel_norm,
        max_abs=stats.max_abs,
        mean_abs=stats.abs_diff / n,
        frac_changed_exact=stats.changed_exact / n,
        frac_changed_tol=stats.changed_tol / n,
        norm_base=math.sqrt(stats.sq_base),
        norm_diff=math.sqrt(stats.sq_diff),
        nan_count=stats.nan_base + stats.nan_post,
        inf_count=stats.inf_base + stats.inf_post,
        effective_rank=rank.effective_rank if rank else None,
        entropy_rank=rank.entropy_rank if rank else None,
        subspace_overlap=rank.subspace_overlap if rank else None,
        rank_bound=bound,
    )


def _names_to_compare(
    base: TensorSource, names_b: list[str], post: TensorSource
) -> tuple[list[str], list[str], list[str], dict[str, str], dict[str, str]]:
    """The tensors both models really use, by name: (common, only in base, only in post, and
    per side the names read as another stored tensor).

    A tied unembedding is the embedding: counted once, as the embedding. But a checkpoint whose
    config says tied and that stores its own, different unembedding is loaded untied by
    transformers; that tensor is compared, against the other side's own unembedding or, where
    that side is tied, its embedding (what its model multiplies by). `names_b` is
    `_used(base)`, read once for every child.
    """
    names_p = _used(post)
    alias_b, alias_p = _tied_aliases(base, names_b, names_p), _tied_aliases(post, names_p, names_b)
    set_b, set_p = set(names_b) | set(alias_b), set(names_p) | set(alias_p)
    common = [n for n in [*names_b, *alias_b] if n in set_p]
    return common, sorted(set_b - set_p), sorted(set_p - set_b), alias_b, alias_p


def _used(source: TensorSource) -> list[str]:
    """The stored tensors a model uses: a tied checkpoint's stored unembedding is left out when
    it equals the embedding (transformers then ties them), kept when it differs."""
    names = source.names()
    if not source.tie_word_embeddings:
        return names
    embedding = token_embedding(names)
    out = []
    for n in names:
        if classify(n)[1] == "unembedding" and embedding is not None:
            head, embed = source.get(n), source.get(embedding)
            if head.shape == embed.shape and bool((head == embed).all()):
                continue
        out.append(n)
    return out


def _tied_aliases(source: TensorSource, own: list[str], other: list[str]) -> dict[str, str]:
    """For a tied checkpoint without its own unembedding: the other side's unembedding names,
    read as this side's embedding."""
    embedding = token_embedding(own)
    if not source.tie_word_embeddings or embedding is None:
        return {}
    if any(classify(n)[1] == "unembedding" for n in own):
        return {}
    return {n: embedding for n in other if classify(n)[1] == "unembedding"}


def _dtype_name(tensor: Any) -> str:
    """The stored dtype of a tensor or `RawTensor`, as torch names it (``bfloat16``);
    ``adapter`` for a LoRA update (a low-rank product, not stored entries)."""
    if isinstance(tensor, RawTensor):
        return {"F32": "float32", "BF16": "bfloat16"}[tensor.code]
    if isinstance(tensor, lora.LoraUpdate):
        return "adapter"
    return str(tensor.dtype).removeprefix("torch.")


def _is_float(dtype: str) -> bool:
    """Whether entries of this stored dtype are real numbers (a LoRA update is)."""
    return dtype == "adapter" or "float" in dtype


def _odd_dtypes(rows: list[TensorDiff], dtypes: list[tuple[str, str]]) -> list[str]:
    """The tensors stored in another dtype pair than most of the checkpoint's (one float16
    tensor inside float32 checkpoints): compared after upcasting, but their "changed" shares
    count at that tensor's own resolution, so they are named."""
    if not dtypes:
        return []
    usual = max(set(dtypes), key=dtypes.count)
    return [f"{r.name}: {' → '.join(d)}" for r, d in zip(rows, dtypes, strict=True) if d != usual]


def _storage(dtypes: list[tuple[str, str]]) -> str:
    """``"base dtype → post dtype"`` over the tensors compared (``mixed`` where they differ)."""
    sides = [{d[i] for d in dtypes} for i in (0, 1)]
    return " → ".join(next(iter(s)) if len(s) == 1 else "mixed" for s in sides)


def _summary(
    stats: list[UpdateStats], seconds: float, bytes_read: int, atol: float, storage: str = ""
) -> WeightSummary | None:
    if not stats:
        return None
    n = sum(s.numel for s in stats)
    sq_b = sum(s.sq_base for s in stats)
    return WeightSummary(
        rel_norm=math.sqrt(sum(s.sq_diff for s in stats) / sq_b) if sq_b else 0.0,
        frac_changed_exact=sum(s.changed_exact for s in stats) / max(1, n),
        frac_changed_tol=sum(s.changed_tol for s in stats) / max(1, n),
        update_sparsity_tol=1 - sum(s.changed_tol for s in stats) / max(1, n),
        n_params=n,
        n_tensors=len(stats),
        n_nonfinite=sum(s.nan_base + s.nan_post + s.inf_base + s.inf_post for s in stats),
        bytes_read=bytes_read,
        seconds=seconds,
        atol=atol,
        storage=storage,
    )


def compare_weights(
    base: str, post: str, config: WeightDiffConfig | None = None, progress: bool | None = None
) -> WeightDiff:
    """Compare two checkpoints tensor by tensor (see the module docstring).

    Raises:
        CheckpointError: a checkpoint is missing, truncated or corrupted (the file is named).
    """
    return compare_children(base, {"post": post}, config, progress).children["post"]


@dataclass(frozen=True)
class FamilyWeightSummary:
    """Each child's global figures, and the mean cosine of each pair of updates.

    Attributes:
        children: child → `WeightSummary`.
        mean_update_cosine: ``"sft_rl"`` → mean over tensors of the two updates' cosine.
    """

    children: dict[str, WeightSummary]
    mean_update_cosine: dict[str, float | None]

    def __getitem__(self, child: str) -> WeightSummary:
        return self.children[child]


@dataclass
class FamilyWeightDiff(Result[FamilyWeightSummary], kind="weights"):
    """A base compared with several children, plus the cosine between each pair of updates.

    Indexing by child name gives that child's `WeightDiff`.
    """

    children: dict[str, WeightDiff]
    cosines: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def __getitem__(self, child: str) -> WeightDiff:
        return self.children[child]

    def summary(self) -> FamilyWeightSummary:
        means = {}
        for label, values in self.cosines.items():
            finite = [v for v in values.values() if v is not None]
            means[label] = sum(finite) / len(finite) if finite else None
        return FamilyWeightSummary({k: d.summary() for k, d in self.children.items()}, means)

    def to_frame(self) -> Any:
        """One row per (child, tensor), with the update cosines as extra columns."""
        import pandas as pd

        frames = [d.to_frame().assign(child=k) for k, d in self.children.items()]
        frame = pd.concat(frames, ignore_index=True)
        for pair, values in self.cosines.items():
            frame[f"cos_{pair}"] = frame["name"].map(values)
        return frame

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "children": {k: d.to_json() for k, d in self.children.items()},
            "update_cosine": self.cosines,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FamilyWeightDiff:
        children = {k: WeightDiff.from_json(v) for k, v in data["children"].items()}
        return cls(children, {k: dict(v) for k, v in data.get("update_cosine", {}).items()})

    def plot(self) -> Any:
        """Relative update norm per layer and module, one heatmap row per child."""
        from postlens.viz import figures

        return figures.sparsity_by_layer(self.children)

    def _repr_html_(self) -> str:
        return "".join(d._repr_html_() for d in self.children.values())


def _read(reader: TensorSource, name: str, raw: bool) -> Any:
    """Tensor `name`: its stored entries (`RawTensor`) when `raw` and it can, else torch's."""
    tensor = reader.raw(name) if raw else None
    return reader.get(name) if tensor is None else tensor


def compare_children(
    base: str,
    children: dict[str, str],
    config: WeightDiffConfig | None = None,
    progress: bool | None = None,
) -> FamilyWeightDiff:
    """Compare a base with one or more children in one streaming pass over the base.

    With two children the result also holds, per tensor, the cosine between their updates. A
    child may be a LoRA adapter folder (`postlens.diffs.weights.adapters`).
    """
    cfg = config or WeightDiffConfig()
    start = time.perf_counter()
    readers = {"base": open_checkpoint(base)}
    readers |= {k: lora.open_child(v, readers["base"], base) for k, v in children.items()}
    used_base = _used(readers["base"])
    plans = {k: _names_to_compare(readers["base"], used_base, readers[k]) for k in children}
    common = {k: set(plans[k][0]) for k in children}
    aliases = {"base": {a: n for k in children for a, n in plans[k][3].items()}}
    aliases |= {k: plans[k][4] for k in children}
    listed = [*readers["base"].names(), *aliases["base"]]
    names = [n for n in dict.fromkeys(listed) if any(n in common[k] for k in children)]
    rows: dict[str, list[TensorDiff]] = {k: [] for k in children}
    stats: dict[str, list[UpdateStats]] = {k: [] for k in children}
    mismatches: dict[str, list[str]] = {k: [] for k in children}
    dtypes: dict[str, list[tuple[str, str]]] = {k: [] for k in children}
    # The update cosine is reported for the first two children (e.g. sft and rl).
    pair = tuple(children)[:2] if len(children) >= 2 else None
    cosines: dict[str, dict[str, float | None]] = {f"{pair[0]}_{pair[1]}": {}} if pair else {}
    bytes_read = 0
    # Plain checkpoints without --rank: float32/bfloat16 safetensors tensors go to the C kernel
    # as their stored entries (`RawTensor`), so this usual case never imports torch.
    raw = not cfg.rank and all(type(r) is CheckpointReader for r in readers.values())
    for name in tqdm(names, desc="comparing tensors", disable=not show_progress(progress)):
        w_base = _read(readers["base"], aliases["base"].get(name, name), raw)
        bytes_read += w_base.numel() * w_base.element_size()
        loaded, kinds_of, base_kind = {}, {}, _dtype_name(w_base)
        for k in children:
            if name not in common[k]:
                continue
            stored = aliases[k].get(name, name)
            if raw:
                w = _read(readers[k], stored, raw)
                nbytes = w.numel() * w.element_size()
            else:
                w, nbytes = lora.child_tensor(readers[k], stored, w_base)
            bytes_read += nbytes
            kinds = (base_kind, _dtype_name(w))
            if w.shape != w_base.shape:
                mismatches[k].append(f"{name}: base {tuple(w_base.shape)} vs {k} {tuple(w.shape)}")
            elif _is_float(kinds[0]) != _is_float(kinds[1]):
                # Integer entries are quantized codes whose scale lives elsewhere: subtracting
                # them from real weights gives a number, but a meaningless one.
                mismatches[k].append(f"{name}: base {kinds[0]} vs {k} {kinds[1]} (not comparable)")
            else:
                loaded[k], kinds_of[k] = w, kinds
        # The cosine pair goes first: stream_updates pairs the first two children it is given.
        with_pair = pair is not None and all(k in loaded for k in pair)
        first = list(pair) if pair is not None and with_pair else []
        keys = [*first, *(k for k in loaded if k not in first)]
        per_child, paired = lora.tensor_updates(w_base, [loaded[k] for k in keys], cfg.atol)
        for k, st in zip(keys, per_child, strict=True):
            rank = lora.update_rank(w_base, loaded[k], cfg.rank, cfg.rank_r)
            rows[k].append(_row(name, tuple(w_base.shape), st, rank, lora.rank_bound(loaded[k])))
            stats[k].append(st)
            dtypes[k].append(kinds_of[k])
        if first and paired is not None:
            cosines[f"{first[0]}_{first[1]}"][name] = paired.cosine
    seconds = time.perf_counter() - start
    result = {
        k: WeightDiff(
            base,
            spec,
            rows[k],
            plans[k][1],
            plans[k][2],
            mismatches[k],
            _summary(stats[k], seconds, bytes_read, cfg.atol, _storage(dtypes[k])),
            _odd_dtypes(rows[k], dtypes[k]),
        )
        for k, spec in children.items()
    }
    return FamilyWeightDiff(result, cosines)


def weights_of_family(
    family: Any, inputs: Any, config: WeightDiffConfig, progress: bool
) -> FamilyWeightDiff:
    """``fam.weights``: `compare_children` on the family's checkpoint files.

    Raises:
        ConfigError: `inputs` given (weights read no inputs).
        NotSupportedError: a model of the family was built in memory (no files to read).
    """
    if inputs is not None:
        raise ConfigError("weights read the checkpoint files and take no inputs; leave them None")
    if any(p.post_spec.kind == "memory" for p in family.pairs.values()):
        raise NotSupportedError(
            "weights are read from checkpoint files; this family was built from models in "
            "memory (save them with save_pretrained and load the folders)"
        )
    return compare_children(family.base_spec, family.specs, config, progress)
