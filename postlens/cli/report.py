"""``postlens report``: the self-contained HTML report of a checkpoint pair (the main job)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.reporting.config import ReportConfig

_DEFAULTS = ReportConfig()


def _children(post: str | None, sft: str | None, rl: str | None) -> dict[str, str]:
    from postlens.errors import ConfigError

    children = {k: v for k, v in (("post", post), ("sft", sft), ("rl", rl)) if v}
    if not children:
        raise ConfigError("give a post-trained model (POST, --sft or --rl), or use --demo")
    return children


@app.command("report")
@friendly_errors
def report(
    base: str | None = typer.Argument(None, help="Base model spec."),
    post: str | None = typer.Argument(None, help="Post-trained model spec."),
    sft: str | None = typer.Option(None, help="An SFT child of BASE."),
    rl: str | None = typer.Option(None, help="An RL child of BASE."),
    demo: bool = typer.Option(False, help="The shipped organism: base, sft and rl."),
    prompts: Path | None = opt.PROMPTS,
    prompt_field: str = opt.PROMPT_FIELD,
    completion_field: str = opt.COMPLETION_FIELD,
    personas: Path | None = typer.Option(
        None,
        help="Persona file for the personas section (JSONL: 'persona', 'prompt', optional "
        "'completion'); its untagged prompts are --prompts (default: the family's own).",
    ),
    out: Path = typer.Option(Path("report.html"), help="Where to write the HTML report."),
    json_out: Path | None = typer.Option(
        None,
        "--json",
        help="Also write every section's results as JSON (postlens render reads it).",
    ),
    sections: str | None = typer.Option(
        None, help="Comma-separated sections (default: every one that can run on the inputs)."
    ),
    verifier: str = typer.Option(_DEFAULTS.verifier, help="How the prompts' answers are checked."),
    n_prompts: int = typer.Option(_DEFAULTS.n_prompts, help="Prompts (or problems) used."),
    n_samples: int = typer.Option(
        _DEFAULTS.sample.n, help="Completions sampled per prompt from each child."
    ),
    passk_samples: int = typer.Option(_DEFAULTS.passk_samples, help="Samples per problem, pass@k."),
    max_new_tokens: int = typer.Option(_DEFAULTS.sample.max_new_tokens),
    seed: int = opt.SEED,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    chat_template: str | None = opt.CHAT_TEMPLATE,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Compute every section and write one self-contained HTML file; exit 1 if a section failed."""
    setup_logging(verbose)
    from postlens.errors import ConfigError
    from postlens.sampling.generation import SampleConfig

    if demo:
        base, children = "organism:base", {"sft": "organism:sft", "rl": "organism:rl"}
    elif base is None:
        raise ConfigError("give BASE (and POST or --sft/--rl), or use --demo")
    else:
        children = _children(post, sft, rl)
    chosen = tuple(s.strip() for s in sections.split(",") if s.strip()) if sections else ()
    sample = SampleConfig(n=n_samples, max_new_tokens=max_new_tokens, seed=seed)
    source = opt.prompt_source(prompts, prompt_field, completion_field)
    config = ReportConfig(sections=chosen, prompts=source, n_prompts=n_prompts, sample=sample,
                          passk_samples=passk_samples, verifier=verifier, seed=seed,
                          personas=personas)  # fmt: skip
    opt.check_outputs(out, json_out, inputs=(prompts, personas))
    opt.check_load(dtype, device)
    import postlens as pl

    fam = pl.load(base, children=children, backend=backend, dtype=dtype, device=device,
                  chat_template=chat_template)  # fmt: skip
    console = Console(stderr=True)
    rep = fam.report(config, on_section=_progress(console))
    for name, reason in rep.skipped.items():
        console.print(f"· {name} not run: {reason}", markup=False, highlight=False)
    if rep.interrupted:  # a partial report never replaces a complete one at the same path
        out, json_out = _partial(out), _partial(json_out) if json_out else None
        console.print(f"interrupted: the finished sections go to {out}", markup=False)
    _write(rep, out, json_out, console)
    if rep.failed or rep.interrupted:
        raise typer.Exit(130 if rep.interrupted else 1)


def _progress(console: Console) -> Callable[[str, Any], None]:
    """The report's progress lines: a section starting, then its outcome (`SectionResult`)."""

    def show(name: str, result: Any) -> None:
        if result is None:
            console.print(f"[bold]▶ {name}[/bold] …")
        elif result.ok:
            console.print(f"  [green]✓ {name}[/green] in {result.seconds:.1f} s")
        else:
            first = result.error.splitlines()[0]
            console.print(f"  [red]✗ {name} failed[/red] in {result.seconds:.1f} s: {first}")

    return show


def _partial(path: Path) -> Path:
    """Where an interrupted run's output goes: ``NAME.partial.SUFFIX`` beside `path`.

    Example:
        >>> _partial(Path("out/report.html"))
        PosixPath('out/report.partial.html')
    """
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def _write(rep: Any, out: Path, json_out: Path | None, console: Console) -> None:
    rep.save(out)
    opt.write_json(json_out, rep.to_json())
    console.print(f"report written to {out} ({out.stat().st_size / 2**20:.1f} MiB)")


@app.command("render")
@friendly_errors
def render(
    results: Path = typer.Argument(..., help="A report's results (postlens report --json)."),
    out: Path = typer.Option(Path("report.html"), help="Where to write the HTML report."),
    title: str | None = typer.Option(None, help="The page title."),
    verbose: bool = opt.VERBOSE,
) -> None:
    """Re-render a report from its results, without loading a model or recomputing anything."""
    setup_logging(verbose)
    from postlens.reporting import report as load_report

    opt.check_outputs(out, inputs=(results,))
    rep = load_report(results)
    rep.save(out, title)
    Console(stderr=True).print(f"report written to {out} ({out.stat().st_size / 2**20:.1f} MiB)")
