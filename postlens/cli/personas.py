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


def _print(console: Console, found: Any) -> None:
    table = Table(title="Persona directions (one vs rest, held-out AUROC)")
    for col in ("persona", "best layer", "AUROC", "d'"):
        table.add_column(col, justify="right")
    for name, p in found.directions.personas.items():
        b = p.best
        sep = "–" if b.separation is None else f"{b.separation:.2f}"
        table.add_row(name, str(b.layer), f"{b.auroc:.3f}", sep)
    console.print(table)
    table = Table(title="Untagged prompts on each persona direction: projection, child's shift")
    for col in ("model", "persona", "mean", "change vs base", "shift cosine"):
        table.add_column(col, justify="right")
    for row in found.to_frame().to_dict("records"):
        cos = "" if row["shift_cosine"] is None else f"{row['shift_cosine']:+.3f}"
        table.add_row(row["model"], row["persona"], f"{row['mean']:.3f}",
                      f"{row['change_vs_base']:+.3f}", cos)  # fmt: skip
    console.print(table)
    diff = found.features
    if diff is None:
        console.print("no SAE given: latent diffing skipped (--sae DIR or --train-sae)")
        return
    q = found.sae["quality"]
    console.print(
        f"SAE {found.sae['source']} at {found.sae['hook']}: variance explained "
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
    from postlens.probes.persona_analysis import analyse_personas
    from postlens.probes.personas import full_text

    organism = base.startswith("organism:")
    if not children:
        children = ["organism:sft", "organism:rl"] if organism else []
    if not children:
        raise InputFileError("give at least one child model after BASE")
    child_names = _child_names(children, names)
    if not organism and (persona_file is None or prompts is None):
        raise InputFileError(
            "give --personas FILE (JSONL: 'persona', 'prompt') and --prompts FILE (untagged)"
        )
    defaults: dict[str, Any] = {}
    if organism:
        from postlens.organism.persona_sets import organism_persona_inputs

        defaults = organism_persona_inputs(per_persona, limit, seed)
    sets = read_persona_file(persona_file, per_persona) if persona_file else defaults["sets"]
    texts = _read_texts(prompts, limit) if prompts else defaults["prompts"]
    corpus_texts = _read_texts(corpus, 10**9) if corpus else defaults.get("corpus")
    pairs = ModelPair.load_family(
        base,
        dict(zip(child_names, children, strict=True)),
        backend=backend,  # type: ignore[arg-type]
    )
    first = next(iter(pairs.values()))
    if train:
        sae_model = _train(
            first, corpus_texts or [full_text(t) for t in texts], layer, training_tokens, seed
        )
        source = "trained"
        if save_sae_to is not None:
            from postlens.diffs.sae import save_sae

            save_sae(sae_model, save_sae_to)
            source = str(save_sae_to)
    else:
        sae_model, source = _load_sae(sae, sae_id, base)
    found = analyse_personas(pairs, sets, texts, corpus_texts, sae_model, source, top,
                             cos_threshold, auroc_threshold, seed)  # fmt: skip
    _print(Console(), found)
    if json_out is not None:
        models = {"base": base, **dict(zip(child_names, children, strict=True))}
        write_json_atomic(json_out, {"models": models, **found.to_json()})


def _read_texts(path: Path, limit: int) -> list[str]:
    from postlens.prompts import read_prompts

    return [r.prompt + (r.completion or "") for r in read_prompts(path)[:limit]]


def _train(pair: Any, corpus: list[str], layer: int | None, tokens: int, seed: int) -> Any:
    from postlens.diffs.sae import SAETrainConfig, train_sae

    layer = pair.n_layers // 2 if layer is None else layer
    batch = min(2048, tokens)
    config = SAETrainConfig(layer=layer, training_tokens=tokens, batch_tokens=batch, seed=seed)
    return train_sae(pair.base, corpus, config)
