"""Per-position statistics of two next-token distributions, reduced on the device.

Everything here takes the logits of one batch ``[n, vocab]`` and returns vectors ``[n]``, so a
caller can stream a corpus batch by batch without keeping anything of size positions × vocab.
Entropies and divergences are in nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass
class PositionStats:
    """Statistics of one batch of positions (every field has the batch's length first)."""

    entropy_base: Float[Tensor, " n"]
    entropy_post: Float[Tensor, " n"]
    kl: Float[Tensor, " n"]
    js: Float[Tensor, " n"]
    argmax_base: Int[Tensor, " n"]
    argmax_post: Int[Tensor, " n"]
    post_rank_in_base: Int[Tensor, " n"]
    p_base_of_base: Float[Tensor, " n"]
    p_base_of_post: Float[Tensor, " n"]
    p_post_of_base: Float[Tensor, " n"]
    p_post_of_post: Float[Tensor, " n"]
    top_base_ids: Int[Tensor, "n k"]
    top_base_p: Float[Tensor, "n k"]
    top_post_ids: Int[Tensor, "n k"]
    top_post_p: Float[Tensor, "n k"]


def entropy(logp: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """H(p) = −Σ p log p, from log-probabilities."""
    return -(logp.exp() * logp).sum(-1)


def kl_div(logp: Float[Tensor, "n vocab"], logq: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """KL(p‖q) = Σ p (log p − log q)."""
    return (logp.exp() * (logp - logq)).sum(-1)


def js_div(logp: Float[Tensor, "n vocab"], logq: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m) with m = ½(p+q); bounded by ln 2."""
    logm = torch.logaddexp(logp, logq) - torch.log(torch.tensor(2.0, dtype=logp.dtype))
    return 0.5 * (kl_div(logp, logm) + kl_div(logq, logm))


def position_stats(
    logits_base: Float[Tensor, "n vocab"], logits_post: Float[Tensor, "n vocab"], top: int = 5
) -> PositionStats:
    """Every per-position figure of BRIEF.md §1 for one batch of positions.

    ``post_rank_in_base`` is 1-based: 1 means the post model's choice is also the base's.
    """
    logp_b = torch.log_softmax(logits_base.float(), -1)
    logp_p = torch.log_softmax(logits_post.float(), -1)
    arg_b, arg_p = logp_b.argmax(-1), logp_p.argmax(-1)
    chosen_b = logp_b.gather(-1, arg_p[:, None])
    # Ties count in the post token's favour: rank = 1 + number of strictly better tokens.
    rank = (logp_b > chosen_b).sum(-1) + 1
    top_b, top_p = logp_b.topk(top, -1), logp_p.topk(top, -1)
    pick = lambda logp, idx: logp.gather(-1, idx[:, None]).squeeze(-1).exp()  # noqa: E731
    return PositionStats(
        entropy_base=entropy(logp_b),
        entropy_post=entropy(logp_p),
        kl=kl_div(logp_p, logp_b),
        js=js_div(logp_b, logp_p),
        argmax_base=arg_b,
        argmax_post=arg_p,
        post_rank_in_base=rank,
        p_base_of_base=pick(logp_b, arg_b),
        p_base_of_post=pick(logp_b, arg_p),
        p_post_of_base=pick(logp_p, arg_b),
        p_post_of_post=pick(logp_p, arg_p),
        top_base_ids=top_b.indices,
        top_base_p=top_b.values.exp(),
        top_post_ids=top_p.indices,
        top_post_p=top_p.values.exp(),
    )
