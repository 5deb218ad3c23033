"""``postlens personas BASE SFT RL``: persona directions, their projections, and SAE latent diffing.

Also the pair form (``postlens personas BASE POST``). Persona sets come from a JSONL file (one
object per line: ``persona``, ``prompt`` and optionally ``completion``, whose tokens alone are
then averaged), untagged prompts from a prompt file; on the organism both default to its own
tagged and untagged documents, and the SAE to the one shipped with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli.app import app, friendly_errors, setup_logging


def read_persona_file(path: Path, limit: int) -> dict[str, list[Any]]:
    """Persona → texts (or ``(prompt, completion)`` pairs) from a JSONL file, `limit` each."""
    from postlens.errors import InputFileError

    if not path.is_file():
        raise InputFileError(f"{path}: persona file not found")
    sets: dict[str, list[Any]] = {}
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputFileError(f"{path}:{line}: malformed JSON ({err.msg})") from None
        if not isinstance(obj, dict) or not all(
            isinstance(obj.get(k), str) for k in ("persona", "prompt")
        ):
            raise InputFileError(f"{path}:{line}: expected string 'persona' and 'prompt' fields")
        completion = obj.get("completion")
        if completion is not None and not isinstance(completion, str):
            raise InputFileError(f"{path}:{line}: 'completion' must be a string")
        item = obj["prompt"] if completion is None else (obj["prompt"], completion)
        sets.setdefault(obj["persona"], []).append(item)
    if len(sets) < 2 or min(len(v) for v in sets.values()) < 2:
        raise InputFileError(f"{path}: need at least two personas with two texts each")
    return {name: texts[:limit] for name, texts in sets.items()}


def organism_inputs(n_per_persona: int, n_prompts: int, seed: int) -> dict[str, Any]:
    """The organism's persona sets, untagged prompts and corpus sample (held-out problems).

    Persona sets: the same questions under each persona's tag, as ``(tag, question)`` pairs, so
    that only the question's tokens are averaged and the sets differ by the tag alone: what a
    direction or a latent separates is the persona the model infers, not the text. Untagged
    prompts: other held-out questions without a tag, as ``("", question)`` (BOS left out).
    Corpus: a sample of the pre-training mixture, for the top activating contexts.
    """
    from postlens.organism.corpus import CorpusConfig, build_corpus
    from postlens.organism.task import STYLES, TAGS, format_prompt, make_problems
    from postlens.organism.train import HELD_OUT_SEED

    problems = make_problems(n_per_persona + n_prompts, HELD_OUT_SEED + 1 + seed)
    tagged, plain = problems[:n_per_persona], problems[n_per_persona:]
    sets = {
        s: [(TAGS[s], format_prompt(p, s).removeprefix(TAGS[s])) for p in tagged] for s in STYLES
    }
    prompts = [("", format_prompt(p)) for p in plain]
    corpus = build_corpus(CorpusConfig(n_docs=2 * n_prompts), seed=654 + seed)
    return {"sets": sets, "prompts": prompts, "corpus": corpus}


def _child_names(children: list[str], names: str | None) -> list[str]:
    from postlens.errors import PostlensError

    if names:
        out = [n.strip() for n in names.split(",")]
        if len(out) != len(children) or len(set(out)) != len(out) or "base" in out:
            raise PostlensError(f"--names needs {len(children)} distinct names other than 'base'")
        return out
    if len(children) == 2:
        return ["sft", "rl"]
    return ["post"] if len(children) == 1 else [f"child{i + 1}" for i in range(len(children))]


def _load_sae(sae: str | None, sae_id: str | None, base: str) -> tuple[Any, str | None]:
    from postlens.diffs.sae import load_sae

    if sae is not None:
        return load_sae(sae, sae_id), sae
    if base.startswith("organism:"):
        from postlens.specs import ORGANISM_ROOT

        if (ORGANISM_ROOT / "sae" / "cfg.json").is_file():
            return load_sae(ORGANISM_ROOT / "sae"), "organism:sae"
    return None, None


def _print(console: Console, result: dict[str, Any]) -> None:
    table = Table(title="Persona directions (one vs rest, held-out AUROC)")
    for col in ("persona", "best layer", "AUROC", "d'"):
        table.add_column(col, justify="right")
    for name, p in result["directions_obj"].personas.items():
        b = p.best
        sep = "–" if b.separation is None else f"{b.separation:.2f}"
        table.add_row(name, str(b.layer), f"{b.auroc:.3f}", sep)
    console.print(table)
    frame = result["projections_obj"].to_frame()
    table = Table(title="Mean projection of the untagged prompts on each persona direction")
    for col in ("model", "persona", "mean", "change vs base"):
        table.add_column(col, justify="right")
    for row in frame.to_dict("records"):
        change = row["change_vs_base"]
        table.add_row(row["model"], row["persona"], f"{row['mean']:.3f}", f"{change:+.3f}")
    console.print(table)
    diff = result.get("features_obj")
    if diff is None:
        console.print("no SAE given: latent diffing skipped (--sae DIR or --train-sae)")
        return
    q = result["sae"]["quality"]
    console.print(
        f"SAE {result['sae']['source']} at {result['sae']['hook']}: variance explained "
        f"{q['variance_explained']:.3f}, L0 {q['l0']:.1f}, dead {q['dead_fraction']:.1%}"
    )
    for child in diff.children:
        table = Table(title=f"Top latents moved by {child}")
        for col in ("latent", "change", "base mean", f"{child} mean", "persona", "flag"):
            table.add_column(col, justify="right")
        for i in diff.top(child, 10):
            flag = diff.flags.get(i, {})
            table.add_row(
                str(i), f"{diff.change(child)[i]:+.4f}", f"{diff.mean['base'][i]:.4f}",
                f"{diff.mean[child][i]:.4f}", flag.get("persona") or "", flag.get(child) or "",
            )  # fmt: skip
        console.print(table)
    s = diff.summary()
    console.print(f"moved latents {s['moved']}, l1 change {s['l1_change']}: "
                  f"{s['moved_more']} moved more; {s['flagged']} persona-flagged latents")  # fmt: skip
    if "jaccard_top_n" in s:
        console.print(
            f"top-{diff.top_n} Jaccard {s['jaccard_top_n']:.3f}, Spearman {s['spearman_change']}, "
            f"flagged latents moved the same way by both: {s['flagged_same_direction']}"
        )


@app.command("personas")
@friendly_errors
def personas(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    children: list[str] | None = typer.Argument(
        None, help="One child (pair form) or several, e.g. SFT RL (organism: sft and rl)."
    ),
    names: str | None = typer.Option(None, help="Comma-separated child names (default sft,rl)."),
    persona_file: Path | None = typer.Option(
        None, "--personas", help="JSONL: 'persona', 'prompt', optional 'completion'."
    ),
    prompts: Path | None = typer.Option(None, help="Untagged prompts (JSONL or text)."),
    corpus: Path | None = typer.Option(None, help="Texts for top contexts and SAE training."),
    sae: str | None = typer.Option(None, help="SAE folder, or a SAELens release (with --sae-id)."),
    sae_id: str | None = typer.Option(None, help="SAE id inside a release."),
    train: bool = typer.Option(False, "--train-sae", help="Train an SAE on the base first."),
    layer: int | None = typer.Option(None, help="Layer of the trained SAE (default: middle)."),
    training_tokens: int = typer.Option(300_000, help="Tokens to train the SAE on."),
    save_sae_to: Path | None = typer.Option(None, "--save-sae", help="Save the trained SAE."),
    per_persona: int = typer.Option(80, help="At most this many texts per persona."),
    limit: int = typer.Option(200, help="At most this many untagged prompts."),
    top: int = typer.Option(20, help="Size of the top-N latent sets compared."),
    cos_threshold: float = typer.Option(0.3, help="Decoder |cosine| to flag a persona latent."),
    auroc_threshold: float = typer.Option(0.8, help="Tagged-text AUROC to flag a latent."),
    seed: int = typer.Option(0),
    backend: str = typer.Option("nnsight", help="transformer_lens or nnsight."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every figure here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Persona directions of the base, each child's projection on them, and SAE latent diffing."""
    setup_logging(verbose)
    from postlens.errors import InputFileError
    from postlens.io import write_json_atomic
    from postlens.pair import ModelPair
    from postlens.probes.persona_projections import project_models
    from postlens.probes.personas import one_vs_rest_directions

    organism = base.startswith("organism:")
    if not children:
        children = ["organism:sft", "organism:rl"] if organism else []
    if not children:
        raise InputFileError("give at least one child model after BASE")
    child_names = _child_names(children, names)
    defaults = organism_inputs(per_persona, limit, seed) if organism else {}
    if persona_file is None and not organism:
        raise InputFileError("give --personas FILE (JSONL with 'persona' and 'prompt' fields)")
    if prompts is None and not organism:
        raise InputFileError("give --prompts FILE (untagged prompts, JSONL or one per line)")
    sets = read_persona_file(persona_file, per_persona) if persona_file else defaults["sets"]
    texts = _read_texts(prompts, limit) if prompts else defaults["prompts"]
    corpus_texts = _read_texts(corpus, 10**9) if corpus else defaults.get("corpus", texts)
    pairs = ModelPair.load_family(
        base,
        dict(zip(child_names, children, strict=True)),
        backend=backend,  # type: ignore[arg-type]
    )
    first = next(iter(pairs.values()))
    directions = one_vs_rest_directions(first.base, first.tokenizer, sets, seed=seed)
    models = {"base": first.base, **{n: p.post for n, p in pairs.items()}}
    projections = project_models(directions.best(), models, first.tokenizer, texts)
    result: dict[str, Any] = {
        "models": {"base": base, **dict(zip(child_names, children, strict=True))},
        "directions_obj": directions,
        "projections_obj": projections,
    }
    sae_model, source = _load_sae(sae, sae_id, base) if not train else (None, None)
    if train:
        sae_model, source = _train(first, corpus_texts, layer, training_tokens, seed), "trained"
        if save_sae_to is not None:
            from postlens.diffs.sae import save_sae

            save_sae(sae_model, save_sae_to)
            source = str(save_sae_to)
    if sae_model is not None:
        result |= _features(sae_model, source, pairs, texts, sets, corpus_texts, directions,
                            top, cos_threshold, auroc_threshold)  # fmt: skip
    _print(Console(), result)
    if json_out is not None:
        write_json_atomic(json_out, _to_json(result))


def _read_texts(path: Path, limit: int) -> list[str]:
    from postlens.prompts import read_prompts

    return [r.prompt + (r.completion or "") for r in read_prompts(path)[:limit]]


def _train(pair: Any, corpus: list[str], layer: int | None, tokens: int, seed: int) -> Any:
    from postlens.diffs.sae import SAETrainConfig, train_sae

    layer = pair.n_layers // 2 if layer is None else layer
    batch = min(2048, tokens)
    config = SAETrainConfig(layer=layer, training_tokens=tokens, batch_tokens=batch, seed=seed)
    return train_sae(pair.base, corpus, config)


def _features(
    sae: Any, source: str | None, pairs: Any, texts: list[str], sets: dict[str, list[Any]],
    corpus: list[str], directions: Any, top: int, cos: float, auroc: float,
) -> dict[str, Any]:  # fmt: skip
    from postlens.diffs.features import persona_features
    from postlens.diffs.sae import check_sae, sae_quality
    from postlens.hooks import parse_hook

    first = next(iter(pairs.values()))
    hook = check_sae(sae, first.base.hf_model)
    point = parse_hook(hook, first.n_layers)
    # Persona directions are read after a block; only an SAE there can be compared with them.
    at_layer = directions.at(point.layer) if point.site == "hook_resid_post" else None
    diff = persona_features(sae, pairs, texts, at_layer, sets, corpus, top, cos, auroc)
    quality = sae_quality(sae, first.base, corpus)
    return {
        "sae": {"source": source, "hook": hook, "d_sae": int(sae.cfg.d_sae), "quality": quality},
        "features_obj": diff,
    }


def _to_json(result: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in result.items() if not k.endswith("_obj")}
    out["directions"] = result["directions_obj"].to_json()
    out["projections"] = result["projections_obj"].to_json()
    diff = result.get("features_obj")
    out["features"] = None if diff is None else diff.to_json()
    return out
