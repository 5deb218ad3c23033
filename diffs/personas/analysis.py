"""The persona analysis of a model family in one call: directions, projections, shifts, latents.

Persona selection asks which persona of the base each kind of post-training picked (persona
vectors, arXiv 2507.21509; persona features, arXiv 2506.19823). `analyse_personas` answers it
the way ``postlens personas``, the HTML report and notebooks (``fam.personas()``) all do:

1. persona directions of the base from persona-tagged sets (one persona against the others,
   per layer, with held-out AUROC to pick a layer);
2. the mean projection of the same untagged prompts on each direction in base and children,
   and the cosine of each child's mean activation shift with each direction (one forward pass
   per model serves both);
3. given an SAE of the base, latent diffing of base and children on those prompts, with the
   latents that align with a direction or separate the tagged sets flagged as persona features.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> cfg = PersonaConfig(n_per_persona=8, n_prompts=8, top_n=5)
    >>> inputs = persona_inputs(fam.inputs, cfg)
    >>> inputs.corpus = inputs.corpus[:4]  # a short corpus keeps the example quick
    >>> found = analyse_personas(fam.pairs, inputs, cfg, default_sae=fam.inputs.sae())
    >>> found.sae.source.endswith("sae"), found.summary().latents.moved_more in ("sft", "rl")
    (True, True)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from postlens.data.defaults import InputProvider, PersonaFiles
from postlens.diffs.personas.result import (  # noqa: F401  (the result's names, re-exported)
    ChildPersonas,
    DirectionQuality,
    PersonaAnalysis,
    PersonaLatent,
    PersonaShift,
    PersonaSummary,
    SAEInfo,
)
from postlens.errors import ConfigError, InputFileError
from postlens.probes.personas.directions import (  # PersonaInputs re-exported: the analysis's input
    PersonaInputs,
    PersonaSet,
    Text,
    mean_activations,
    mean_shift,
    one_vs_rest_directions,
)
from postlens.probes.personas.projections import projections_of

#: `PersonaConfig.sae`: the SAE the family's default inputs ship (`InputProvider.sae`), if any.
AUTO_SAE = "auto"


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonaConfig:
    """Settings of a persona analysis.

    Attributes:
        sae: the SAE for latent diffing: a SAELens folder, a SAELens release (with `sae_id`),
            ``"auto"`` (the default: the SAE the family's default inputs ship, if any) or
            ``None`` / ``"none"`` (skip latent diffing).
        sae_id: the SAE inside a release.
        train_sae: train an SAE on the base first (on the corpus) instead of loading one.
        sae_layer: layer of the trained SAE (default: the middle block).
        training_tokens: tokens the trained SAE sees.
        top_n: size of the top-N latent sets compared.
        cos_threshold: decoder |cosine| with a direction that flags a persona latent.
        auroc_threshold: tagged-text AUROC that flags a persona latent.
        seed: the held-out split of the sets, the default inputs' draw, the SAE's training.
        n_per_persona: texts per persona set (the first ones).
        n_prompts: untagged prompts (the first ones).
    """

    sae: str | None = AUTO_SAE
    sae_id: str | None = None
    train_sae: bool = False
    sae_layer: int | None = None
    training_tokens: int = 300_000
    top_n: int = 20
    cos_threshold: float = 0.3
    auroc_threshold: float = 0.8
    seed: int = 0
    n_per_persona: int = 60
    n_prompts: int = 120

    def __post_init__(self) -> None:
        if self.top_n < 1 or self.n_per_persona < 2 or self.n_prompts < 1:
            raise ConfigError(
                f"need top_n >= 1, n_per_persona >= 2 and n_prompts >= 1 (got {self.top_n}, "
                f"{self.n_per_persona}, {self.n_prompts})"
            )
        if not 0 < self.cos_threshold <= 1 or not 0.5 < self.auroc_threshold <= 1:
            raise ConfigError(
                f"need cos_threshold in (0, 1] and auroc_threshold in (0.5, 1] (got "
                f"{self.cos_threshold}, {self.auroc_threshold})"
            )
        if self.training_tokens < 1 or (self.sae_layer is not None and self.sae_layer < 0):
            raise ConfigError("training_tokens must be positive and sae_layer >= 0")


def read_persona_file(path: str | Path, limit: int) -> dict[str, list[Text]]:
    """Persona → texts (or ``(prompt, completion)`` pairs) from a JSONL file, `limit` each.

    Each line is an object with string ``persona`` and ``prompt`` fields and an optional
    ``completion`` (then only its tokens are averaged).

    Raises:
        InputFileError: a missing file or a bad line (named), or fewer than two personas with
            two texts each.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: persona file not found")
    sets: dict[str, list[Text]] = {}
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text.strip():
            persona, item = _persona_line(path, line, text)
            sets.setdefault(persona, []).append(item)
    if len(sets) < 2 or min(len(v) for v in sets.values()) < 2:
        raise InputFileError(f"{path}: need at least two personas with two texts each")
    return {name: texts[:limit] for name, texts in sets.items()}


def _persona_line(path: Path, line: int, text: str) -> tuple[str, Text]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(f"{path}:{line}: malformed JSON ({err.msg})") from None
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("persona", "prompt")):  # fmt: skip
        raise InputFileError(f"{path}:{line}: expected string 'persona' and 'prompt' fields")
    completion = obj.get("completion")
    if completion is not None and not isinstance(completion, str):
        raise InputFileError(f"{path}:{line}: 'completion' must be a string")
    return obj["persona"], obj["prompt"] if completion is None else (obj["prompt"], completion)


def read_texts(path: str | Path, limit: int | None = None) -> list[str]:
    """Whole texts (prompt + completion) of a prompt file (JSONL or text), the first `limit`."""
    from postlens.data.prompts import read_prompts

    return [r.prompt + (r.completion or "") for r in read_prompts(path)[:limit]]


def persona_inputs(
    provider: InputProvider,
    config: PersonaConfig | None = None,
    personas: str | Path | None = None,
    prompts: str | Path | None = None,
    corpus: str | Path | None = None,
) -> PersonaInputs:
    """The inputs of a persona analysis: from files, or the family's default inputs.

    Args:
        provider: the family's default inputs (``fam.inputs``).
        config: `n_per_persona`, `n_prompts` and `seed` are read.
        personas: a JSONL file of tagged texts (`read_persona_file`).
        prompts: a prompt file of untagged prompts (JSONL or text).
        corpus: a prompt file of texts for the SAE (default: the prompts, or the defaults').

    Raises:
        InputFileError: no persona or prompt file, and no default persona sets.
    """
    cfg = config or PersonaConfig()
    defaults = None
    if personas is None or prompts is None:
        defaults = provider.personas(cfg.n_per_persona, cfg.n_prompts, cfg.seed)
        if defaults is None:
            raise InputFileError(
                "persona analysis needs persona-tagged sets and untagged prompts for this "
                "model: pass inputs=PersonaInputs(sets={persona: [texts]}, prompts=[...]) or "
                "persona_inputs(fam.inputs, personas=FILE, prompts=FILE) (a JSONL file with "
                "'persona', 'prompt' and optional 'completion'; on the command line --personas "
                "FILE --prompts FILE)"
            )
        if isinstance(defaults, PersonaFiles):
            return persona_inputs(InputProvider(), cfg, defaults.personas, defaults.prompts,
                                  defaults.corpus)  # fmt: skip
    if defaults is None:  # both files given
        assert personas is not None and prompts is not None
        return PersonaInputs(
            read_persona_file(personas, cfg.n_per_persona),
            list(read_texts(prompts, cfg.n_prompts)),
            read_texts(corpus) if corpus else None,
        )
    return PersonaInputs(
        read_persona_file(personas, cfg.n_per_persona) if personas else defaults.sets,
        list(read_texts(prompts, cfg.n_prompts)) if prompts else defaults.prompts,
        read_texts(corpus) if corpus else (defaults.corpus if defaults else None),
    )  # fmt: skip


#: Why `persona_sae` returned no SAE when the family ships one: the optional SAELens is missing.
NO_SAE_LENS = "SAE latent diffing skipped: pip install 'postlens[sae]' for SAELens"


def persona_sae(
    pairs: Mapping[str, Any], inputs: PersonaInputs, config: PersonaConfig,
    default_sae: str | None = None,
) -> tuple[Any, str | None]:  # fmt: skip
    """The SAE `config` asks for, and its source: loaded, trained on the corpus, or none
    (source ``None``, or `NO_SAE_LENS` when the family's SAE needs the missing SAELens).

    ``config.sae == "auto"`` takes `default_sae` (the family's, ``fam.inputs.sae()``).
    """
    from postlens.diffs.features.sae import SAETrainConfig, load_sae, sae_lens_installed, train_sae

    first = next(iter(pairs.values()))
    if config.train_sae:
        layer = first.n_layers // 2 if config.sae_layer is None else config.sae_layer
        tokens = config.training_tokens
        train_cfg = SAETrainConfig(layer=layer, training_tokens=tokens,
                                   batch_tokens=min(2048, tokens), seed=config.seed)  # fmt: skip
        return train_sae(first.base, inputs.texts, train_cfg), "trained"
    spec = config.sae
    if spec == AUTO_SAE:
        # "auto" degrades gracefully: without the optional SAELens, latent diffing is skipped
        # (and the report says why) instead of failing the whole persona analysis.
        if default_sae is not None and not sae_lens_installed():
            return None, NO_SAE_LENS
        spec = default_sae
    if spec is None or spec == "none":
        return None, None
    return load_sae(spec, config.sae_id), spec


def analyse_personas(
    pairs: Mapping[str, Any],
    inputs: PersonaInputs,
    config: PersonaConfig | None = None,
    *,
    sae_model: Any = None,
    sae_source: str = "given",
    default_sae: str | None = None,
) -> PersonaAnalysis:
    """Directions of the base, projections and shifts of each child, and SAE latent diffing.

    Args:
        pairs: child name → `ModelPair`, all sharing the base (``fam.pairs``).
        inputs: tagged sets, untagged prompts and corpus (`persona_inputs`).
        config: SAE, thresholds and seed (`PersonaConfig`).
        sae_model: an SAE already loaded (overrides ``config.sae``).
        sae_source: where `sae_model` came from, for provenance.
        default_sae: the SAE ``config.sae == "auto"`` means (``fam.inputs.sae()``).
    """
    if not pairs:
        raise ConfigError("need at least one child")
    cfg = config or PersonaConfig()
    first = next(iter(pairs.values()))
    base, tok = first.base, first.tokenizer
    vectors = one_vs_rest_directions(base, tok, inputs.sets, seed=cfg.seed)
    best = vectors.best()
    models = {"base": base, **{n: p.post for n, p in pairs.items()}}
    layers = sorted({d.layer for d in best.values()})
    acts = {name: mean_activations(m, tok, inputs.prompts, layers) for name, m in models.items()}
    result = PersonaAnalysis(
        _qualities(vectors),
        projections_of(best, acts),
        {child: _shifts(acts[child], acts["base"], best) for child in pairs},
        vectors=vectors,
    )
    sae, source = (
        (sae_model, sae_source)
        if sae_model is not None
        else persona_sae(pairs, inputs, cfg, default_sae)
    )
    if source == NO_SAE_LENS:
        logger.warning(NO_SAE_LENS)
    if sae is not None:
        _add_features(result, sae, source, pairs, inputs, cfg)
    return result


def _qualities(vectors: PersonaSet) -> dict[str, list[DirectionQuality]]:
    return {
        name: [DirectionQuality(**d.row()) for d in p.directions]
        for name, p in vectors.personas.items()
    }


def _shifts(
    acts: Mapping[int, Tensor], base_acts: Mapping[int, Tensor], best: Mapping[str, Any]
) -> dict[str, PersonaShift]:
    """Persona → the child's mean activation shift at the direction's layer, against it."""
    row = {}
    for persona, d in best.items():
        unit, norm = mean_shift(base_acts[d.layer], acts[d.layer])
        row[persona] = PersonaShift(d.layer, float(unit @ d.vector.float()), norm)
    return row


def _add_features(
    result: PersonaAnalysis,
    sae: Any,
    source: str | None,
    pairs: Mapping[str, Any],
    inputs: PersonaInputs,
    cfg: PersonaConfig,
) -> None:
    from postlens.diffs.features.compute import persona_features
    from postlens.diffs.features.sae import check_sae, sae_quality
    from postlens.hooks import parse_hook

    first = next(iter(pairs.values()))
    hook = check_sae(sae, first.base.hf_model)
    point = parse_hook(hook, first.n_layers)
    # Directions are read after a block: only an SAE at hook_resid_post compares with them.
    vectors = result.vectors
    post = point.site == "hook_resid_post" and point.layer is not None and vectors is not None
    at_layer = vectors.at(point.layer) if post else None  # type: ignore[union-attr, arg-type]
    texts = inputs.texts
    result.features = persona_features(
        sae, pairs, inputs.prompts, at_layer, inputs.sets, texts, cfg.top_n,
        cfg.cos_threshold, cfg.auroc_threshold,
    )  # fmt: skip
    quality: dict[str, Any] = sae_quality(sae, first.base, texts)
    result.sae = SAEInfo(source, hook, int(sae.cfg.d_sae), **quality)


def personas_of_family(
    family: Any, inputs: PersonaInputs | None, config: PersonaConfig, progress: bool
) -> PersonaAnalysis:
    """``fam.personas``: `analyse_personas` with the family's chat format and default inputs.

    `inputs` is a `PersonaInputs` (tagged sets, untagged prompts, corpus); by default the
    family's own persona sets (``fam.inputs.personas``).
    """
    from postlens.models.chat import format_inputs

    data = inputs if inputs is not None else persona_inputs(family.inputs, config)
    formatted = format_inputs(family.first.chat, data)
    return analyse_personas(family.pairs, formatted, config, default_sae=family.inputs.sae())
