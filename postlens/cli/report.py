"""``postlens report``: the self-contained HTML report of a checkpoint pair (the main job)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from postlens.cli.app import app, friendly_errors, setup_logging


def _children(post: str | None, sft: str | None, rl: str | None) -> dict[str, str]:
    from postlens.errors import PostlensError

    children = {k: v for k, v in (("post", post), ("sft", sft), ("rl", rl)) if v}
    if not children:
        raise PostlensError("give a post-trained model (POST, --sft or --rl), or use --demo")
    return children


@app.command("report")
@friendly_errors
def report(
    base: str | None = typer.Argument(None, help="Base model spec."),
    post: str | None = typer.Argument(None, help="Post-trained model spec."),
    sft: str | None = typer.Option(None, help="An SFT child of BASE."),
    rl: str | None = typer.Option(None, help="An RL child of BASE."),
    demo: bool = typer.Option(False, help="The shipped organism: base, sft and rl."),
    prompts: Path | None = typer.Option(
        None, help="JSONL ('prompt', optional 'completion') or text."
    ),
    out: Path = typer.Option(Path("report.html"), help="Where to write the HTML report."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write every section's numbers as JSON."
    ),
    sections: str | None = typer.Option(
        None, help="Comma-separated: weights,forks,activations,passk."
    ),
    verifier: str | None = typer.Option(
        None, help="'organism' to enable pass@k on organism problems."
    ),
    n_prompts: int = typer.Option(32, help="Prompts (or problems) used."),
    n_samples: int = typer.Option(2, help="Completions sampled per prompt from each child."),
    passk_samples: int = typer.Option(16, help="Samples per problem for pass@k."),
    max_new_tokens: int = typer.Option(100),
    seed: int = typer.Option(0),
    backend: str = typer.Option("nnsight", help="transformer_lens or nnsight."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Compute every section and write one self-contained HTML file; exit 1 if a section failed."""
    setup_logging(verbose)
    from postlens.io import write_json_atomic, write_text_atomic
    from postlens.reporting import ReportConfig, SectionResult, run_report
    from postlens.viz.report import render_report, report_json

    if demo:
        base, children, verifier = (
            "organism:base",
            {"sft": "organism:sft", "rl": "organism:rl"},
            verifier or "organism",
        )
    else:
        if base is None:
            from postlens.errors import PostlensError

            raise PostlensError("give BASE (and POST or --sft/--rl), or use --demo")
        children = _children(post, sft, rl)
    config = ReportConfig(
        base=base, children=children, prompts=prompts,
        sections=tuple(s.strip() for s in sections.split(",")) if sections else (),
        backend=backend, seed=seed, n_prompts=n_prompts, n_samples=n_samples,
        max_new_tokens=max_new_tokens, verifier=verifier, passk_samples=passk_samples,
    )  # fmt: skip
    console = Console(stderr=True)

    def progress(name: str, result: SectionResult | None) -> None:
        if result is None:
            console.print(f"[bold]▶ {name}[/bold] …")
        elif result.ok:
            console.print(f"  [green]✓ {name}[/green] in {result.seconds:.1f} s")
        else:
            console.print(
                f"  [red]✗ {name} failed[/red] in {result.seconds:.1f} s: {result.error.splitlines()[0]}"
            )

    data = run_report(config, on_section=progress)
    write_text_atomic(out, render_report(data))
    if json_out is not None:
        write_json_atomic(json_out, report_json(data))
    size = out.stat().st_size / 2**20
    console.print(f"report written to {out} ({size:.1f} MiB)")
    if data.failed:
        raise typer.Exit(1)
