"""``postlens personas BASE SFT RL``: persona directions, their projections, and SAE latent diffing.

Also the pair form (``postlens personas BASE POST``). Persona sets come from a JSONL file (one
object per line: ``persona``, ``prompt`` and optionally ``completion``, whose tokens alone are
then averaged), untagged prompts from a prompt file; on the organism both default to its own
tagged and untagged documents, and the SAE to the one shipped with it. The analysis is
`postlens.diffs.personas.analysis.analyse_personas` (``fam.personas()``), its options a
`PersonaConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging

if TYPE_CHECKING:
    from postlens.backends.names import BackendName
from postlens.cli.config_options import with_config
from postlens.diffs.personas.analysis import PersonaConfig, read_persona_file

#: Every option's default lives once, in `PersonaConfig`.


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


def _inputs(base: str, cfg: PersonaConfig, personas: Path | None, source: Any,
            corpus: Path | None) -> Any:  # fmt: skip
    """The persona inputs; untagged prompts read with ``--prompt-field`` / ``--completion-field``."""
    import dataclasses

    from postlens.data.defaults import provider_for
    from postlens.data.inputs import PromptFile
    from postlens.diffs.personas.analysis import PersonaInputs, Text, persona_inputs, read_texts
    from postlens.models.specs import resolve_spec

    defaults = provider_for(base, resolve_spec(base).path)
    if not isinstance(source, PromptFile):
        return persona_inputs(defaults, cfg, personas, source, corpus)
    texts: list[Text] = [r.prompt + (r.completion or "") for r in source.read()[: cfg.n_prompts]]
    if personas is not None:
        sets = read_persona_file(personas, cfg.n_per_persona)
        return PersonaInputs(sets, texts, read_texts(corpus) if corpus else None)
    # Only a family with default persona sets gets here (persona_inputs says so otherwise).
    return dataclasses.replace(persona_inputs(defaults, cfg, None, None, corpus), prompts=texts)


def _print(console: Console, found: Any, skipped: str | None = None) -> None:
    """The tables; `skipped` is why no SAE was used when it was not for want of one."""
    table = Table(title="Persona directions (one vs rest, held-out AUROC)")
    for col in ("persona", "best layer", "AUROC", "d'"):
        table.add_column(col, justify="right")
    for name in found.directions:
        b = found.best(name)
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
        reason = skipped or "no SAE given: latent diffing skipped (--sae DIR or --train-sae)"
        console.print(reason, markup=False)
        return
    q = found.sae
    console.print(
        f"SAE {q.source} at {q.hook}: variance explained "
        f"{q.variance_explained:.3f}, L0 {q.l0:.1f}, dead {q.dead_fraction:.1%}"
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
    console.print(f"moved latents {s.moved}, l1 change {s.l1_change}: "
                  f"{s.moved_more} moved more; {s.flagged} persona-flagged latents")  # fmt: skip
    if s.jaccard_top_n is not None:
        console.print(
            f"top-{diff.top_n} Jaccard {s.jaccard_top_n:.3f}, Spearman {s.spearman_change}, "
            f"flagged latents moved the same way by both: {s.flagged_same_direction}"
        )


@app.command("personas")
@friendly_errors
@with_config(
    PersonaConfig,
    names={
        "sae_layer": "layer",
        "top_n": "top",
        "n_per_persona": "per-persona",
        "n_prompts": "limit",
    },
)
def personas(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    children: list[str] | None = typer.Argument(
        None, help="One child (pair form) or several, e.g. SFT RL (organism: sft and rl)."
    ),
    names: str | None = typer.Option(None, help="Comma-separated child names (default sft,rl)."),
    persona_file: Path | None = typer.Option(
        None, "--personas", help="JSONL: 'persona', 'prompt', optional 'completion'."
    ),
    prompts: Path | None = typer.Option(
        None, help="Untagged prompts (JSONL, text, or a local dataset)."
    ),
    prompt_field: str = opt.PROMPT_FIELD,
    completion_field: str = opt.COMPLETION_FIELD,
    corpus: Path | None = typer.Option(None, help="Texts for top contexts and SAE training."),
    save_sae_to: Path | None = typer.Option(None, "--save-sae", help="Save the trained SAE."),
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    chat_template: str | None = opt.CHAT_TEMPLATE,
    json_out: Path | None = typer.Option(None, "--json", help="Write every figure here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    config: PersonaConfig | None = None,
) -> None:
    """Persona directions of the base, each child's projection on them, and SAE latent diffing."""
    setup_logging(verbose)
    from postlens.diffs.personas.analysis import analyse_personas, persona_sae
    from postlens.errors import InputFileError
    from postlens.family import load
    from postlens.models.chat import format_inputs

    if not children:
        children = ["organism:sft", "organism:rl"] if base.startswith("organism:") else []
    if not children:
        raise InputFileError("give at least one child model after BASE")
    specs = dict(zip(_child_names(children, names), children, strict=True))
    cfg = config
    assert cfg is not None  # built by with_config from the options
    opt.check_outputs(json_out, inputs=(persona_file, prompts, corpus))
    opt.check_load(dtype, device)
    source = opt.prompt_source(prompts, prompt_field, completion_field)
    inputs = _inputs(base, cfg, persona_file, source, corpus)
    fam = load(base, children=specs, backend=cast("BackendName", backend), dtype=dtype, device=device,
               chat_template=chat_template)  # fmt: skip
    inputs = format_inputs(fam.first.chat, inputs)
    sae_model, source = persona_sae(fam.pairs, inputs, cfg, fam.inputs.sae())
    if cfg.train_sae and save_sae_to is not None:
        from postlens.diffs.features.sae import save_sae

        save_sae(sae_model, save_sae_to)
        source = str(save_sae_to)
    found = analyse_personas(fam.pairs, inputs, cfg, sae_model=sae_model, sae_source=source)
    _print(Console(), found, source if sae_model is None else None)
    opt.write_json(json_out, {"models": {"base": base, **specs}, **found.to_json()})
