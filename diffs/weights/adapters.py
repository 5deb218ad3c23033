"""Weight shifts of a PEFT LoRA adapter, exact from its factors: ΔW = scale · B @ A.

An adapter child is compared with its base without building the merged model: for each LoRA
layer the update is computed from A and B in float64, a block of rows at a time (at most
`CHUNK` entries of ΔW exist at once, never a whole layer's), next to the same rows of the
streamed base tensor. Every other base tensor is reported unchanged (rel_norm 0, nothing
changed) without being read twice; tensors the adapter stores whole (``modules_to_save``,
trained biases) are compared as a full checkpoint's would be. Each LoRA tensor's row carries
``rank_bound`` = r: rank(ΔW) ≤ r by construction (``--rank`` measures the actual rank).

Figures are those of `postlens.diffs.weights.compare` with Δ = scale · B @ A taken exactly (float64)
rather than as the difference of two stored float32 tensors, so even an update below float32's
resolution of W counts as changed.

Example:
    >>> from postlens.diffs.weights.compare import compare_weights
    >>> from postlens.testing import save_tiny_adapter
    >>> folder = save_tiny_adapter("adapter", "organism:base", r=4, targets=("q_proj",))
    >>> diff = compare_weights("organism:base", str(folder), progress=False)
    >>> q = next(t for t in diff.tensors if t.name.endswith("0.self_attn.q_proj.weight"))
    >>> q.rank_bound, q.frac_changed_exact, float(diff.by_module().set_index("module").rel_norm["attn_k"])
    (4, 1.0, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from postlens.diffs.weights.checkpoint_io import TensorSource, open_checkpoint
from postlens.diffs.weights.rank import RankStats, rank_stats
from postlens.diffs.weights.stats import CHUNK, PairedUpdates, UpdateStats, stream_updates
from postlens.errors import NotSupportedError
from postlens.models.adapters import AdapterConfig, LoraModule, check_adapter_base, lora_modules
from postlens.models.specs import resolve_spec

if TYPE_CHECKING:  # torch is imported where a LoRA update is handled (weights.py needs none)
    from torch import Tensor


@dataclass
class LoraUpdate:
    """One LoRA layer's update, held as its factors (ΔW is built a block of rows at a time)."""

    layer: LoraModule
    a: Tensor
    b: Tensor

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.b.shape[0], self.a.shape[1]
        return (cols, rows) if self.layer.transposed else (rows, cols)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.a, self.b))

    def rows(self, start: int, stop: int) -> Tensor:
        """ΔW[start:stop] in float64."""
        a, b = self.a.double(), self.b.double()
        if self.layer.transposed:  # ΔW = (B @ A)ᵀ = Aᵀ @ Bᵀ: its rows are A's columns
            return self.layer.scale * (a[:, start:stop].T @ b.T)
        return self.layer.scale * (b[start:stop] @ a)

    def full(self) -> Tensor:
        """ΔW whole, float32 (only for the spectral figures, which need the whole matrix)."""
        return self.rows(0, self.shape[0]).float()


@dataclass
class AdapterReader:
    """An adapter child seen through its base's tensor names (duck-types a `TensorSource`)."""

    config: AdapterConfig
    tensors: TensorSource
    base_names: list[str]
    tie_word_embeddings: bool
    layers: dict[str, LoraModule] = field(default_factory=dict)
    full: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        """The base's names: an adapter holds every base tensor, most of them unchanged."""
        return self.base_names

    def update(self, name: str, base: Tensor) -> tuple[Tensor | LoraUpdate, int]:
        """(the child's tensor `name`, bytes read): `base` itself when the adapter leaves it."""
        if name in self.layers:
            layer = self.layers[name]
            up = LoraUpdate(layer, self.tensors.get(layer.key_a), self.tensors.get(layer.key_b))
            nbytes = up.nbytes
            if name in self.full:  # a saved copy of the base layer (save_embedding_layers)
                import torch

                copy = self.tensors.get(self.full[name])
                nbytes += copy.numel() * copy.element_size()
                if not torch.equal(copy, base):
                    raise NotSupportedError(
                        f"adapter {self.config.folder}: {self.full[name]} is not the base's "
                        f"{name}; an adapter that also replaces a LoRA layer's weight is not "
                        "supported"
                    )
            return up, nbytes
        if name in self.full:
            w = self.tensors.get(self.full[name])
            return w, w.numel() * w.element_size()
        return base, 0


def open_child(spec: str, base: TensorSource, base_spec: str) -> Any:
    """A reader for one child: a checkpoint, or an adapter checked against its base.

    Raises:
        SpecError: the adapter names another base, or targets modules the base lacks.
    """
    resolved = resolve_spec(spec)
    if resolved.kind != "adapter":
        return open_checkpoint(spec)
    config = check_adapter_base(resolved, resolve_spec(base_spec))
    tensors = open_checkpoint(spec)
    layers, full = lora_modules(config, tensors.shapes(), base.shapes())
    return AdapterReader(config, tensors, base.names(), base.tie_word_embeddings, layers, full)


def child_tensor(reader: Any, name: str, base: Tensor) -> tuple[Tensor | LoraUpdate, int]:
    """(tensor `name` of a child, bytes read for it), whatever kind of reader it is."""
    if isinstance(reader, AdapterReader):
        return reader.update(name, base)
    w = reader.get(name)
    return w, w.numel() * w.element_size()


def _block_rows(t: Tensor | LoraUpdate) -> int:
    cols = t.shape[1] if len(t.shape) > 1 else 1
    return max(1, CHUNK // max(1, cols))


def _delta(base64: Tensor, base: Tensor, post: Tensor | LoraUpdate, i: int, j: int) -> Tensor:
    """Rows i:j of a child's update in float64 (a full tensor's Δ taken in float32, as
    `postlens.diffs.weights.stats` takes it)."""
    import torch

    if isinstance(post, LoraUpdate):
        return post.rows(i, j)
    if post is base:
        return torch.zeros_like(base64)
    return (post[i:j].float() - base[i:j].float()).double()


def lora_stats(base: Tensor, up: LoraUpdate, atol: float) -> UpdateStats:
    """`UpdateStats` of one LoRA update, ΔW exact in float64, a block of rows at a time."""
    import torch

    stats = UpdateStats()
    step = _block_rows(up)
    for i in range(0, up.shape[0], step):
        b, d = base[i : i + step].double().reshape(-1), up.rows(i, i + step).reshape(-1)
        n = b.numel()
        sq_d, sq_b = float(d @ d), float(b @ b)
        if not (math.isfinite(sq_d) and math.isfinite(sq_b)):  # NaN/Inf somewhere: mask them
            post = b + d
            stats.nan_base += int(b.isnan().sum())
            stats.nan_post += int(post.isnan().sum())
            stats.inf_base += int(b.isinf().sum())
            stats.inf_post += int(post.isinf().sum())
            finite = b.isfinite() & d.isfinite()
            b, d = b[finite], d[finite]
            sq_d, sq_b = float(d @ d), float(b @ b)
        a = d.abs_()
        sums = [sq_d, sq_b, float(a.sum()), float(a.max()) if a.numel() else 0.0,
                int(torch.count_nonzero(a)), int(torch.count_nonzero(a > atol))]  # fmt: skip
        stats.add(sums, n)  # non-finite entries count in numel, as in `UpdateStats.add_masked`
    return stats


def _cross(base: Tensor, p: Tensor | LoraUpdate, o: Tensor | LoraUpdate) -> PairedUpdates:
    """Sums for the cosine of two updates, one of them (at least) a LoRA update."""
    paired = PairedUpdates()
    step = _block_rows(base)
    for i in range(0, base.shape[0], step):
        b = base[i : i + step].double()
        dp, do = _delta(b, base, p, i, i + step).reshape(-1), _delta(b, base, o, i, i + step)
        do = do.reshape(-1)
        sums = [float(dp @ do), float(dp @ dp), float(do @ do)]
        if not all(map(math.isfinite, sums)):  # leave out entries non-finite in any of the three
            finite = b.reshape(-1).isfinite() & dp.isfinite() & do.isfinite()
            dp, do = dp[finite], do[finite]
            sums = [float(dp @ do), float(dp @ dp), float(do @ do)]
        paired.dot += sums[0]
        paired.sq_a += sums[1]
        paired.sq_b += sums[2]
    return paired


def tensor_updates(
    base: Tensor, posts: list[Tensor | LoraUpdate], atol: float
) -> tuple[list[UpdateStats], PairedUpdates | None]:
    """`stream_updates` for children any of which may be a LoRA update (same contract)."""
    if not any(isinstance(p, LoraUpdate) for p in posts):
        return stream_updates(base, posts, atol)  # type: ignore[arg-type]
    stats = [
        lora_stats(base, p, atol)
        if isinstance(p, LoraUpdate)
        else stream_updates(base, [p], atol)[0][0]
        for p in posts
    ]
    return stats, _cross(base, posts[0], posts[1]) if len(posts) >= 2 else None


def update_rank(base: Tensor, post: Tensor | LoraUpdate, rank: bool, r: int) -> RankStats | None:
    """Spectral figures of a 2-D update (needs ΔW whole: one float32 copy of the tensor)."""
    if not rank or base.ndim != 2 or min(base.shape) < 2:
        return None
    if isinstance(post, LoraUpdate):
        return rank_stats(base, post.full(), r)
    diff = (post.float() - base.float()).nan_to_num(0.0, 0.0, 0.0)
    return rank_stats(base, diff, r)


def rank_bound(post: Tensor | LoraUpdate) -> int | None:
    """r for a LoRA update (rank(ΔW) ≤ r by construction); ``None`` otherwise."""
    return post.layer.r if isinstance(post, LoraUpdate) else None
