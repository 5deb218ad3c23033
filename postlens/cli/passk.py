"""``postlens passk MODEL...``: unbiased pass@k curves of several models on verifiable prompts."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli.app import app, friendly_errors, setup_logging


def problems_and_verifiers(
    prompts: Path | None, first_model: str, limit: int, mode: str
) -> tuple[list[str], list[Any]]:
    """Prompts and one verifier each: from a JSONL file's ``answer`` fields, or the organism's."""
    from postlens.diffs.passk import answer_verifier
    from postlens.errors import InputFileError

    if prompts is None:
        if not first_model.startswith("organism:"):
            raise InputFileError("give --prompts FILE (JSONL with 'prompt' and 'answer' fields)")
        from postlens.organism.task import make_problems, verify
        from postlens.organism.train import HELD_OUT_SEED

        problems = make_problems(limit, HELD_OUT_SEED)
        return [p.prompt for p in problems], [
            functools.partial(_verify, verify, p) for p in problems
        ]
    from postlens.prompts import read_prompts

    records = read_prompts(prompts)[:limit]
    verifiers = []
    for r in records:
        if r.answer is None:
            raise InputFileError(f"{prompts}:{r.line}: no 'answer' field to verify against")
        try:
            verifiers.append(answer_verifier(r.answer, mode))
        except ValueError as err:
            raise InputFileError(f"{prompts}:{r.line}: {err}") from None
    return [r.prompt for r in records], verifiers


def _verify(check: Any, problem: Any, completion: str) -> bool:
    return check(completion, problem)


def load_backends(specs: list[str], backend: str) -> tuple[dict[str, Any], Any]:
    """One backend per spec (named after it), sharing the first model's tokenizer."""
    from postlens.compat import tokenizer_differences
    from postlens.errors import IncompatibleModelsError
    from postlens.loading import LoadOptions, load_hf_model, load_tokenizer
    from postlens.pair import make_backend
    from postlens.specs import resolve_spec

    options, out, tokenizer = LoadOptions(), {}, None
    for spec in specs:
        resolved = resolve_spec(spec)
        tok = load_tokenizer(resolved, options)
        if tokenizer is None:
            tokenizer = tok
        elif diffs := tokenizer_differences(tokenizer, tok):
            raise IncompatibleModelsError(f"{specs[0]} and {spec}: " + " | ".join(diffs))
        name = spec.split(":", 1)[1] if spec.startswith("organism:") else Path(spec).name or spec
        if name in out:
            name = spec
        out[name] = make_backend(backend, load_hf_model(resolved, options), tok, resolved.location)
    return out, tokenizer


@app.command("passk")
@friendly_errors
def passk(
    models: list[str] = typer.Argument(..., help="Model specs, e.g. organism:base organism:rl."),
    prompts: Path | None = typer.Option(
        None, help="JSONL with 'prompt' and 'answer' (default: the organism's held-out problems)."
    ),
    n: int = typer.Option(64, help="Samples per problem and model."),
    k: list[int] = typer.Option([], help="k values (repeat the option); default 1, 2, 4, ..., n."),
    verifier: str = typer.Option("last-number", help="last-number, answer-line, contains, exact."),
    limit: int = typer.Option(50, help="Use at most this many problems."),
    max_new_tokens: int = typer.Option(96),
    temperature: float = typer.Option(1.0),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(256),
    backend: str = typer.Option("nnsight", help="transformer_lens or nnsight."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the curves here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Does post-training raise pass@1 but narrow the boundary (the base wins at large k)?"""
    setup_logging(verbose)
    from postlens.diffs.passk import pass_at_k_curves
    from postlens.errors import PostlensError
    from postlens.io import write_json_atomic

    texts, verifiers = problems_and_verifiers(prompts, models[0], limit, verifier)
    backends, tokenizer = load_backends(models, backend)
    try:
        result = pass_at_k_curves(
            backends, tokenizer, texts, verifiers, n=n, ks=k or None,
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
            batch_size=batch_size,
        )  # fmt: skip
    except ValueError as err:
        raise PostlensError(str(err)) from None
    table = Table(title=f"pass@k on {len(texts)} problems, n = {n} samples each")
    table.add_column("k", justify="right")
    for name in result.curves:
        table.add_column(name, justify="right")
    for kk in next(iter(result.curves.values())):
        table.add_row(str(kk), *(f"{c[kk]:.3f}" for c in result.curves.values()))
    Console().print(table)
    if json_out is not None:
        write_json_atomic(json_out, result.to_json())
