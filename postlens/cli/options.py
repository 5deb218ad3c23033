"""Options shared by several commands, with their defaults taken from the config dataclasses.

Each default lives once, in the dataclass (`SampleConfig`, `ForkConfig`, ...): the options of a
config come from its fields (`postlens.cli.config_options`); the options here are the ones no
config holds (inputs, loading, outputs). This module is imported by
every command at start-up, so it imports only light modules: `postlens.sampling.generation` defers torch
to its functions and the backend names live in `postlens.backends.names`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from postlens.backends.names import BACKENDS, DEFAULT_BACKEND
from postlens.sampling.generation import SampleConfig

BACKEND = typer.Option(DEFAULT_BACKEND, help=f"{' or '.join(BACKENDS)}.")
DTYPE = typer.Option(
    None,
    help="float32, bfloat16 or float16 (default: the checkpoints' storage dtype when 16-bit, "
    "else float32).",
)
DEVICE = typer.Option(
    None, help="cpu, cuda, cuda:N, mps or auto (accelerate's device_map='auto'); default CPU."
)
CHAT_TEMPLATE = typer.Option(
    None,
    "--chat-template",
    help="Whose chat template formats each prompt: none, base or post (default: post when its "
    "tokenizer has one). Only the response tokens are scored.",
)
PROMPTS = typer.Option(
    None,
    help="JSONL ('prompt', optional 'completion' / 'answer'; or chat 'messages', a system prompt "
    "and several turns), text (one prompt per line), or a local Hugging Face dataset (.parquet, "
    ".arrow, a save_to_disk folder).",
)
PROMPT_FIELD = typer.Option("prompt", help="The field (or dataset column) holding the prompt.")
COMPLETION_FIELD = typer.Option(
    "completion", help="The field (or dataset column) holding the completion."
)
SEED = typer.Option(SampleConfig.seed, help="Seed of every sampling step.")
PROBLEMS = typer.Option(
    None,
    "--prompts",
    help="Verifiable problems: JSONL with 'prompt' and 'answer' (default: the family's own).",
)


def problems_input(prompts: Path | None = PROBLEMS) -> Path | None:
    """The ``--prompts`` problems file of a command whose analysis reads problems (or none)."""
    if prompts is not None and not Path(prompts).exists():
        from postlens.errors import InputFileError

        raise InputFileError(f"{prompts}: file not found")
    return prompts


#: Sampling settings a command that samples only through its own decoding does not use.
UNUSED_SAMPLING = ("sample.source", "sample.top_p", "sample.batch_size")
JSON_OUT = typer.Option(None, "--json", help="Write the result as JSON here (atomically).")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Log what happens, with library warnings.")


def generate_option(default_help: str) -> Any:
    return typer.Option(
        None,
        help=f"Sample N completions per prompt ({default_help}; 0: score the given completions).",
    )


def check_load(dtype: str | None, device: str | None) -> None:
    """Refuse an unknown ``--dtype`` or a device that is not there, before anything loads."""
    from postlens.models.dtypes import check_dtype
    from postlens.models.loading import check_device

    check_dtype(dtype)
    check_device(device)


def prompt_source(prompts: Path | None, prompt_field: str, completion_field: str) -> Any:
    """``--prompts`` with ``--prompt-field`` / ``--completion-field`` (`postlens.data.inputs.PromptFile`)."""
    from postlens.data.inputs import prompt_file

    return prompt_file(prompts, prompt_field, completion_field)


def sequences_input(prompts: Any, generate: int | None, limit: int | None) -> Any:
    """What to compare the models on, from --prompts (a path or `PromptFile`) and --generate.

    ``--generate N`` samples N completions per prompt (completions in the file are then not
    used); ``--generate 0`` scores the file's completions; without it, the file's completions
    are scored when it has them, and otherwise `SampleConfig.n` completions are sampled.
    Without --prompts: ``None`` (the family's own problems, sampled).
    """
    from postlens.data.inputs import prompt_records
    from postlens.errors import InputFileError

    if prompts is None:
        if generate == 0:
            raise InputFileError("--generate 0 scores a file's completions: give --prompts FILE")
        return None
    records = prompt_records(prompts, limit)
    if generate == 0:
        if not all(r.completion is not None for r in records):
            missing = [str(r.line) for r in records if r.completion is None][:10]
            where = f"{prompts}: " if prompts is not None else ""
            raise InputFileError(
                f"{where}no completion to score for the prompt(s) at line {', '.join(missing)}: add "
                "'completion' fields or sample some (--generate N)"
            )
        return records
    if generate is not None:
        return [r.prompt for r in records]
    return records


def with_generate(sample: SampleConfig, generate: int | None) -> SampleConfig:
    """`sample` with ``--generate N`` completions per prompt (0 or unset: its own `n`).

    Example:
        >>> with_generate(SampleConfig(), 5).n, with_generate(SampleConfig(), None).n
        (5, 2)
    """
    import dataclasses

    return dataclasses.replace(sample, n=generate) if generate else sample


def check_outputs(*paths: Path | None, inputs: tuple[Path | None, ...] = ()) -> None:
    """Fail before any compute when an output path cannot be written, when two outputs are one
    file, or when an output is one of the `inputs` files."""
    from postlens.io import check_distinct, check_writable

    outputs = [check_writable(p) for p in paths if p is not None]
    check_distinct(outputs, [p for p in inputs if p is not None and p.is_file()])


def child_specs(children: list[str]) -> dict[str, str]:
    """Children by name: the organism's own (``sft``, ``rl``), else ``post`` for a single child
    (as the pair commands name it) and ``child1``, ``child2``... for several.

    Example:
        >>> child_specs(["organism:rl", "out/model"]), child_specs(["out/model"])
        ({'rl': 'organism:rl', 'child2': 'out/model'}, {'post': 'out/model'})
    """
    names = {}
    alone = len(children) == 1
    for i, spec in enumerate(children):
        own = spec.split(":", 1)[1] if spec.startswith("organism:") else None
        name = own or ("post" if alone else f"child{i + 1}")
        names[name if name not in names else f"child{i + 1}"] = spec
    return names


def load_children(
    base: str, children: list[str] | None, default: list[str], backend: str,
    dtype: str | None, device: str | None, problems: Path | None = None,
) -> Any:  # fmt: skip
    """The family of `base` and `children` (or `default`), each child named by `child_specs`.

    `problems` (``--prompts``) become the family's default problems.
    """
    import postlens as pl

    specs = child_specs(children or default)
    inputs = pl.Inputs(problems=problems) if problems is not None else None
    return pl.load(base, children=specs, backend=backend, dtype=dtype, device=device,
                   inputs=inputs)  # fmt: skip


def write_json(path: Path | None, data: Any) -> None:
    """Write a command's ``--json`` output atomically, when one was asked for."""
    if path is not None:
        from postlens.io import write_json_atomic

        write_json_atomic(path, data)
