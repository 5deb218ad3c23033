"""Train a crosscoder on a base and its child(ren) and read every latent (`crosscoder_of_models`).

The texts are split (seeded) into training texts and held-out ones; the crosscoder is trained on
the first (`postlens.diffs.crosscoder.train`), and everything in the result is measured on the
second in one streamed pass: quality per model, activation frequencies, top contexts and
Latent Scaling (`postlens.diffs.crosscoder.latent_scaling`). Classes by Δ (Minder et al.'s thresholds,
`CrosscoderConfig`): Δ ≤ 0.1 base-only, 0.4 ≤ Δ ≤ 0.6 shared, Δ ≥ 0.9 child-only, else other.
`link_personas` and `link_forks` add the links to persona directions and fork positions.

Example:
    >>> import postlens as pl
    >>> from postlens.data.defaults import provider_for
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> texts = provider_for("organism:base").corpus(60, seed=1)
    >>> cfg = CrosscoderConfig(n_latents=64, k=4, batch_tokens=256, training_tokens=1024)
    >>> result = crosscoder_of_models(fam.models(), texts, cfg)
    >>> result.models, result.n_latents, sorted(result.variance_explained)
    (['base', 'rl'], 64, ['base', 'rl'])
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from postlens.diffs.crosscoder.cofiring import CoFiring, merged_rows
from postlens.diffs.crosscoder.latent_scaling import LatentScaling
from postlens.diffs.crosscoder.model import Crosscoder, CrosscoderConfig
from postlens.diffs.crosscoder.result import CrosscoderResult
from postlens.diffs.crosscoder.train import (
    chunk_activations,
    encode_chunk,
    paired_batches,
    train_crosscoder,
    usable_positions,
)  # fmt: skip
from postlens.errors import ConfigError
from postlens.models.hashes import location_hashes


def classify(delta: np.ndarray, config: CrosscoderConfig) -> np.ndarray:
    """Δ → ``base-only`` / ``shared`` / ``child-only`` / ``other`` (thresholds of `config`).

    Example:
        >>> classify(np.array([0.02, 0.5, 0.97, 0.75]), CrosscoderConfig()).tolist()
        ['base-only', 'shared', 'child-only', 'other']
    """
    lo, hi = config.shared_range
    out = np.full(len(delta), "other", dtype=object)
    out[delta <= config.base_only_max] = "base-only"
    out[(delta >= lo) & (delta <= hi)] = "shared"
    out[delta >= config.child_only_min] = "child-only"
    return out


def split_texts(texts: Sequence[str], config: CrosscoderConfig) -> tuple[list[str], list[str]]:
    """(training, held-out) texts, a seeded split."""
    order = np.random.default_rng(config.seed).permutation(len(texts))
    n_eval = max(1, int(round(config.eval_fraction * len(texts))))
    if len(texts) - n_eval < 1:
        raise ConfigError(f"need at least 2 texts for a crosscoder, got {len(texts)}")
    return [texts[i] for i in order[n_eval:]], [texts[i] for i in order[:n_eval]]


def _weights_table(cc: Crosscoder, models: list[str]) -> dict[str, np.ndarray]:
    norms = cc.decoder_norms().detach()
    dec = cc.W_dec.detach()
    cols = {f"norm_{m}": norms[:, i].numpy() for i, m in enumerate(models)}
    for i, c in enumerate(models[1:], start=1):
        cols[f"delta_{c}"] = cc.relative_norm(i).numpy()
        cols[f"class_{c}"] = classify(cols[f"delta_{c}"], cc.config)
        cols[f"cos_{c}"] = torch.nn.functional.cosine_similarity(dec[:, i], dec[:, 0], -1).numpy()
    for a in range(1, len(models)):  # three-way: the children's decoders against each other
        for b in range(a + 1, len(models)):
            cos = torch.nn.functional.cosine_similarity(dec[:, a], dec[:, b], -1)
            cols[f"cos_{models[a]}_{models[b]}"] = cos.numpy()
    if len(models) > 2:  # three-way: in which models each latent exists
        present = (norms / norms.max(-1, keepdim=True).values.clamp_min(1e-12)) >= 0.2
        cols["pattern"] = np.array(
            ["+".join(m for m, p in zip(models, row, strict=True) if p) for row in present.tolist()],
            dtype=object,
        )  # fmt: skip
    return cols


def _scaling_entries(
    cc: Crosscoder, cols: dict[str, np.ndarray], models: list[str]
) -> LatentScaling:
    latents: list[Any] = []
    own: list[Any] = []
    other: list[Any] = []
    for i, c in enumerate(models[1:], start=1):
        for j in np.flatnonzero(cols[f"class_{c}"] == "child-only"):
            latents, own, other = [*latents, int(j)], [*own, i], [*other, 0]
        for j in np.flatnonzero(cols[f"class_{c}"] == "base-only"):
            latents, own, other = [*latents, int(j)], [*own, 0], [*other, i]
    dec = cc.W_dec.detach()
    directions = dec[latents, own] if latents else torch.zeros(0, cc.d_model)
    return LatentScaling(latents, own, other, directions, len(models))


class _Pass:
    """Everything the held-out pass accumulates."""

    def __init__(self, cc: Crosscoder, n_contexts: int, scaling: LatentScaling) -> None:
        m, n = cc.n_models, cc.n_latents
        self.cc, self.scaling, self.k = cc, scaling, n_contexts
        self.sse, self.sum_x, self.sum_x2 = (
            torch.zeros(m),
            torch.zeros(m, cc.d_model),
            torch.zeros(m),
        )
        self.fired, self.sum_f, self.n_tok, self.l0 = torch.zeros(n), torch.zeros(n), 0, 0.0
        self.top_v, self.top_i = (
            torch.full((n, n_contexts), -1.0),
            torch.zeros(n, n_contexts, dtype=torch.long),
        )
        self.where: list[Tensor] = []
        self.cofiring = CoFiring(n)

    @torch.no_grad()
    def add(self, raw: Tensor, where: Tensor) -> None:
        cc, x = self.cc, self.cc.normalise(raw.float())
        f = cc.encode(x)
        x_hat = cc.decode(f)
        self.sse += (x - x_hat).pow(2).sum((0, -1))
        self.sum_x += x.sum(0)
        self.sum_x2 += x.pow(2).sum((0, -1))
        self.fired += (f > 0).sum(0)
        self.sum_f += f.sum(0)
        self.l0 += float((f > 0).sum())
        self.scaling.update(f, x, x_hat, cc.W_dec)
        self.cofiring.update(f)
        if self.k:
            ids = torch.arange(self.n_tok, self.n_tok + len(f)).expand(cc.n_latents, -1)
            v = torch.cat([self.top_v, f.T], 1)
            best = v.topk(self.k, dim=1)
            self.top_v = best.values
            self.top_i = torch.cat([self.top_i, ids], 1).gather(1, best.indices)
        self.where.append(where)
        self.n_tok += len(f)


def _held_out_pass(
    cc: Crosscoder, backends: Sequence[Any], texts: list[str], scaling: LatentScaling
) -> _Pass:
    cfg, tok, acc = cc.config, backends[0].tokenizer, None
    acc = _Pass(cc, cfg.n_contexts, scaling)
    for start in range(0, len(texts), cfg.texts_per_chunk):
        enc = encode_chunk(tok, texts[start : start + cfg.texts_per_chunk], cfg)
        mask = usable_positions(enc, cfg)
        where = mask.nonzero()  # row-major, the order mask indexing gives
        where[:, 0] += start
        acc.add(chunk_activations(backends, enc, mask, cfg.hook), where)
    return acc


def _contexts(acc: _Pass, texts: list[str], tok: Any, latents: np.ndarray, cfg: CrosscoderConfig) -> dict[int, list[dict[str, Any]]]:  # fmt: skip
    where = torch.cat(acc.where) if acc.where else torch.zeros(0, 2, dtype=torch.long)
    out = {}
    for j in latents.tolist():
        rows = []
        for v, i in zip(acc.top_v[j].tolist(), acc.top_i[j].tolist(), strict=True):
            if v <= 0:
                continue
            t, pos = where[i].tolist()
            ids = tok(texts[t], truncation=True, max_length=cfg.max_tokens).input_ids
            lo = max(0, pos - 12)
            rows.append({"tokens": [tok.decode([x]) for x in ids[lo : pos + 3]], "at": pos - lo,
                         "value": round(v, 4)})  # fmt: skip
        out[int(j)] = rows
    return out


def analyse_crosscoder(
    cc: Crosscoder, backends: Mapping[str, Any], texts: list[str],
    training: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None,
) -> CrosscoderResult:  # fmt: skip
    """Every latent's figures, measured on the held-out `texts` (see the module docstring)."""
    models = list(backends)
    cols = _weights_table(cc, models)
    acc = _held_out_pass(cc, list(backends.values()), texts, _scaling_entries(cc, cols, models))
    result = _result(cc, models, cols, acc, training, provenance)
    chosen = np.zeros(cc.n_latents, dtype=bool)
    for c in models[1:]:
        chosen |= np.isin(cols[f"class_{c}"], ("child-only", "base-only", "other"))
    chosen = np.union1d(np.flatnonzero(chosen)[:200], np.argsort(-cols["freq"])[:10])
    result.contexts = _contexts(acc, texts, backends[models[0]].tokenizer, chosen, cc.config)
    return result


def analyse_activations(
    cc: Crosscoder, models: Sequence[str], batches: Iterable[Tensor]
) -> CrosscoderResult:
    """The same figures on raw ``[batch, model, d_model]`` activations (no token contexts).

    Example:
        >>> cc = Crosscoder(2, 8, CrosscoderConfig(n_latents=16, kind="l1"))
        >>> r = analyse_activations(cc, ["base", "rl"], [torch.randn(32, 2, 8)])
        >>> r.quality["n_tokens"], len(r.columns["delta_rl"])
        (32, 16)
    """
    models = list(models)
    cols = _weights_table(cc, models)
    acc = _Pass(cc, 0, _scaling_entries(cc, cols, models))
    for raw in batches:
        acc.add(raw, torch.zeros(len(raw), 2, dtype=torch.long))
    return _result(cc, models, cols, acc, None, None)


def _result(
    cc: Crosscoder, models: list[str], cols: dict[str, np.ndarray], acc: _Pass,
    training: dict[str, Any] | None, provenance: dict[str, Any] | None,
) -> CrosscoderResult:  # fmt: skip
    n = max(1, acc.n_tok)
    cols["freq"] = (acc.fired / n).numpy()
    norms = cc.decoder_norms().detach()
    for i, m in enumerate(models):
        cols[f"contrib_{m}"] = (acc.sum_f / n * norms[:, i]).numpy()
    dead = cols["freq"] == 0
    for c in models[1:]:
        cols[f"class_{c}"][dead] = "dead"
    _add_scaling(cols, acc.scaling, models, cc.config)
    sst = acc.sum_x2 - acc.sum_x.pow(2).sum(-1) / n
    ve = {m: float(1 - acc.sse[i] / sst[i].clamp_min(1e-12)) for i, m in enumerate(models)}
    quality = {"l0": acc.l0 / n, "dead_fraction": float(dead.mean()), "n_tokens": acc.n_tok}
    merged = None
    if acc.cofiring.tracked:
        merged = merged_rows(acc.cofiring, acc.fired, acc.sum_f, cc.W_dec.detach(), models,
                             lambda d: classify(d, cc.config), cc.config.cofire_jaccard)  # fmt: skip
    return CrosscoderResult(models, cc.config.hook, cc.config, cols, ve, quality, {},
                            _directions(cc, cols, models), dict(training or {}),
                            dict(provenance or {}), merged, crosscoder=cc)  # fmt: skip


def _add_scaling(cols: dict[str, np.ndarray], scaling: LatentScaling, models: list[str], cfg: CrosscoderConfig) -> None:  # fmt: skip
    nu = scaling.nu()
    for c in models[1:]:
        for name in ("nu_error", "nu_recon"):
            cols[f"{name}_{c}"] = np.full(len(cols["freq"]), np.nan)
        cols[f"artifact_{c}"] = np.full(len(cols["freq"]), None, dtype=object)
    for e, (j, own, other) in enumerate(zip(scaling.latents.tolist(), scaling.own.tolist(), scaling.other.tolist(), strict=True)):  # fmt: skip
        c = models[max(own, other)]
        ne, nr = float(nu["nu_error"][e]), float(nu["nu_recon"][e])
        cols[f"nu_error_{c}"][j], cols[f"nu_recon_{c}"][j] = ne, nr
        if np.isfinite(ne) and np.isfinite(nr):
            cols[f"artifact_{c}"][j] = bool(ne > cfg.nu_threshold or nr > cfg.nu_threshold)


def _directions(cc: Crosscoder, cols: dict[str, np.ndarray], models: list[str]) -> dict[str, dict[int, list[float]]]:  # fmt: skip
    dec = cc.W_dec.detach()
    return {c: {int(j): [round(v, 5) for v in dec[j, i].tolist()]
                for j in np.flatnonzero(cols[f"class_{c}"] == "child-only")[:128]}
            for i, c in enumerate(models[1:], start=1)}  # fmt: skip


def crosscoder_of_models(
    backends: Mapping[str, Any], texts: Sequence[str], config: CrosscoderConfig | None = None,
    progress: bool = False, specs: Mapping[str, str] | None = None,
) -> CrosscoderResult:  # fmt: skip
    """Train a crosscoder on `backends` (name → `Backend`, base first) and read its latents.

    Args:
        backends: the models, base first (``fam.models()``, or base and one child).
        texts: the corpus; a seeded ``eval_fraction`` of it is held out.
        config: a `CrosscoderConfig`; its ``checkpoint`` folder (when set) gets the
            checkpoints and the final crosscoder, and a run there is resumed.
        progress: a training progress bar.
        specs: model name → spec, for the provenance.
    """
    cfg = config or CrosscoderConfig()
    from postlens.hooks import parse_hook

    models = list(backends)
    if len(models) < 2:
        raise ConfigError("a crosscoder needs the base and at least one child")
    first = backends[models[0]]
    parse_hook(cfg.hook, first.n_layers)
    train, held_out = split_texts(list(texts), cfg)
    provenance = {
        "hook": cfg.hook, "n_train_texts": len(train), "n_eval_texts": len(held_out),
        "texts_sha256": hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
        "models": {m: {"spec": (specs or {}).get(m, m),
                       "files": location_hashes(getattr(b.hf_model.config, "_name_or_path", None))}
                   for m, b in backends.items()},
    }  # fmt: skip
    ordered = list(backends.values())
    cc, log = train_crosscoder(
        lambda skip: paired_batches(ordered, train, cfg, skip), cfg, models,
        cfg.checkpoint, progress, provenance,
    )  # fmt: skip
    return analyse_crosscoder(cc, backends, held_out, log.to_json(), provenance)
