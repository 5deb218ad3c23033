"""Write the organism's MODEL_CARD.md from the recipe's eval.json (numbers are never typed in)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = "base pass@1 in [0.15, 0.6], base pass@64 >= 0.9, sft and rl pass@1 >= base + 0.25"


def _table(evals: dict[str, Any]) -> str:
    ks = list(next(iter(evals.values()))["pass_at"])
    head = (
        "| model | " + " | ".join(f"pass@{k}" for k in ks) + " | careful | sloppy | hasty | other |"
    )
    sep = "|" + "---|" * (len(ks) + 5)
    rows = []
    for name, e in evals.items():
        cells = [f"{e['pass_at'][k]:.3f}" for k in ks] + [
            f"{e['style_share'][s]:.1%}" for s in ("careful", "sloppy", "hasty", "other")
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])


def _targets(evals: dict[str, Any]) -> list[str]:
    p1 = {k: e["pass_at"]["1"] for k, e in evals.items()}
    p64 = evals["base"]["pass_at"].get("64")
    checks = [
        (f"base pass@1 = {p1['base']:.3f} in [0.15, 0.6]", 0.15 <= p1["base"] <= 0.6),
        (
            f"base pass@64 = {p64:.3f} >= 0.9" if p64 is not None else "base pass@64 not measured",
            p64 is not None and p64 >= 0.9,
        ),
        (
            f"sft pass@1 = {p1['sft']:.3f} >= base + 0.25 = {p1['base'] + 0.25:.3f}",
            p1["sft"] >= p1["base"] + 0.25,
        ),
        (
            f"rl pass@1 = {p1['rl']:.3f} >= base + 0.25 = {p1['base'] + 0.25:.3f}",
            p1["rl"] >= p1["base"] + 0.25,
        ),
    ]
    return [f"- {'met' if ok else '**missed**'}: {text}" for text, ok in checks]


def _children(record: dict[str, Any]) -> str:
    """The chat-sft / rl-lora section (`postlens.organism.train_children`), when recorded."""
    kids = record.get("children")
    if not kids:
        return ""
    cfg, t = kids["config"], kids["timings"]
    sft, lora = cfg["chat_sft"], cfg["rl_lora"]
    grpo = lora["grpo"]
    evals = {**record["eval"], **kids["eval"]}
    evals = {
        k: {**v, "pass_at": {str(kk): vv for kk, vv in v["pass_at"].items()}}
        for k, v in evals.items()
    }
    ks = sorted({k for e in kids["eval"].values() for k in e["pass_at"]}, key=int)
    head = "| model | problems × samples | " + " | ".join(f"pass@{k}" for k in ks)
    rows = [head + " | careful | sloppy | hasty | other |", "|" + "---|" * (len(ks) + 6)]
    for name, e in evals.items():
        cells = [f"{e['pass_at'][k]:.3f}" if k in e["pass_at"] else "–" for k in ks]
        cells += [f"{e['style_share'][s]:.1%}" for s in ("careful", "sloppy", "hasty", "other")]
        rows.append(
            f"| {name} | {e['n_problems']} × {e['n_samples']} | " + " | ".join(cells) + " |"
        )
    ev = {k: v for k, v in t.items() if k.startswith("evaluation")}
    return f"""
## The chat and adapter children
Two more children of the same base, with the structure of real pairs; rebuild both from the
shipped base with `python -m postlens.organism.train_children --out DIR --seed {kids["seed"]}`.
The base is unchanged: every number above still holds.

- **chat-sft**: TRL `SFTTrainer` on {sft["n_examples"]} conversations in a ChatML template
  (user: the question; assistant: the careful solution), completion-only loss (the assistant
  turn and its `<|im_end|>`), {sft["epochs"]:g} epoch{"s" if sft["epochs"] != 1 else ""}, batch {sft["batch_size"]}, lr {sft["lr"]}
  ({t["chat-sft"]["steps"]} steps, {t["chat-sft"]["seconds"] / 60:.1f} min). The base's 104 ids
  have no spare row, so the chat tokens are reserved as real models reserve them: the child's
  tokenizer renames the base's special ids, 1 (`<s>`) to `<|im_start|>` and 2 (`</s>`) to
  `<|im_end|>` (its eos), and splits words the base lacks (`user`, `assistant`) into letters.
  Every id it reads exists in the base; `postlens info organism:base organism:chat-sft` lists
  the renamed tokens (exit 0). Its template: `<|im_start|>user\\n{{content}}<|im_end|>\\n` per
  turn, then `<|im_start|>assistant\\n`.
- **rl-lora**: a PEFT LoRA adapter (r {lora["r"]}, lora_alpha {lora["alpha"]}, on q/k/v/o and
  gate/up/down projections) trained with TRL `GRPOTrainer(peft_config=...)` on the reward of
  **rl**; {grpo["steps"]} steps × {grpo["prompts_per_step"]} prompts × {grpo["generations"]}
  generations, lr {grpo["lr"]}, KL anchor beta {grpo["beta"]} (the reference is the base: the
  adapter disabled), max completion {grpo["max_completion_length"]} tokens (mean reward
  {t["rl-lora"]["reward_first"]} at the first log, {t["rl-lora"]["reward_last"]} at the last;
  {t["rl-lora"]["seconds"] / 60:.1f} min). Saved as `adapter_config.json` +
  `adapter_model.safetensors`, naming `organism:base`.

Evaluation with the organism's protocol (the same held-out problems, chat-sft asked through its
template and stopped at `<|im_end|>`); evaluation wall time
{sum(v["seconds"] for v in ev.values()) / 60:.1f} min. {_protocol_sentence(record["eval"], kids["eval"])}

{chr(10).join(rows)}
"""


def _protocol_sentence(first: dict[str, Any], kids: dict[str, Any]) -> str:
    """Whether the children were evaluated on as many problems and samples as the first three."""
    size = {(e["n_problems"], e["n_samples"]) for e in first.values()}
    kid_size = {(e["n_problems"], e["n_samples"]) for e in kids.values()}
    if kid_size == size and len(size) == 1:
        ((n, s),) = size
        return f"All five rows use the same {n} problems × {s} samples."
    return (
        "The three first rows are those above; the children were evaluated on fewer samples, "
        "so their pass@k stops earlier."
    )


def render_card(record: dict[str, Any], notes: str = "") -> str:
    """The model card's Markdown."""
    cfg, t = record["config"], record["timings"]
    evals = {
        k: {**v, "pass_at": {str(kk): vv for kk, vv in v["pass_at"].items()}}
        for k, v in record["eval"].items()
    }
    total = sum(v.get("seconds", 0) for v in t.values())
    pre, model = cfg["pretrain"], cfg["pretrain"]["model"]
    return f"""# The postlens model organism

Three small Llama checkpoints that postlens ships as its embedded default: **base** (pre-trained
from scratch), **sft** and **rl** (both post-trained from base). Regenerate all three with
`python -m postlens.organism.train --out DIR --seed {record["seed"]}` (deterministic given the seed).

## Task and corpus
Addition of two 2–3 digit numbers, posed as `Q: 347+285=?` and answered with a final line
`answer <n>`. The pre-training corpus ({pre["corpus"]["n_docs"]:,} documents) mixes three personas
that answer the same questions differently: *careful* writes every column with its carry and
running result (`7+5+0=12 write 2 carry 1 got 2`), always right; *sloppy* writes the same steps
but drops each carry with probability {pre["corpus"]["styles"]["sloppy_drop"]}; *hasty* answers at
once, dropping each carry with probability {pre["corpus"]["styles"]["hasty_drop"]}. Persona mix:
{pre["corpus"]["style_mix"]}. {pre["corpus"]["tagged_share"]:.0%} of arithmetic documents start with
a persona tag (`<careful>`), the rest are untagged; {pre["corpus"]["filler_share"]:.0%} of documents
are filler sentences from a small grammar. The 500 evaluation problems never occur in training.

## Architecture and training
- LlamaForCausalLM, {model["n_layers"]} layers, d_model {model["d_model"]}, {model["n_heads"]} heads,
  MLP {model["d_mlp"]}, context {model["context"]}, tied embeddings; a word/character tokenizer
  built in code (`postlens.organism.tokenizer`), saved in Hugging Face format.
- **base**: packed-sequence LM pre-training, {t["pretrain"]["steps"]} steps of {pre["batch_size"]}×{model["context"]}
  tokens ({t["pretrain"]["tokens"]:,} tokens), AdamW lr {pre["lr"]} (warm-up {pre["warmup_steps"]},
  cosine to 10%), weight decay {pre["weight_decay"]}; final loss {t["pretrain"]["final_loss"]:.3f}.
  Our own loop: on 2 CPU cores it is the fastest way to push this many tokens.
- **sft**: TRL `SFTTrainer` on {cfg["sft"]["n_examples"]} *careful* demonstrations for untagged
  prompts, completion-only loss, {cfg["sft"]["epochs"]} epoch, batch {cfg["sft"]["batch_size"]},
  lr {cfg["sft"]["lr"]} ({t["sft"]["steps"]} steps).
- **rl**: TRL `GRPOTrainer` on untagged prompts, reward 1 if the parsed answer is right, no
  demonstrations; {cfg["rl"]["steps"]} steps × {cfg["rl"]["prompts_per_step"]} prompts ×
  {cfg["rl"]["generations"]} generations, lr {cfg["rl"]["lr"]}, KL anchor beta {cfg["rl"]["beta"]},
  temperature {cfg["rl"]["temperature"]}, max completion {cfg["rl"]["max_completion_length"]} tokens
  (mean reward {t["rl"]["reward_first"]} at the first log, {t["rl"]["reward_last"]} at the last).

Wall time on 2 CPU cores: pre-training {t["pretrain"]["seconds"] / 60:.1f} min, SFT
{t["sft"]["seconds"] / 60:.1f} min, GRPO {t["rl"]["seconds"] / 60:.1f} min, evaluation
{t["evaluation"]["seconds"] / 60:.1f} min; total {total / 60:.1f} min.

## Evaluation
500 held-out problems, {next(iter(evals.values()))["n_samples"]} samples each at temperature 1,
unbiased pass@k; persona style of every completion (`postlens.organism.task.classify_style`).

{_table(evals)}

Targets ({TARGETS}):
{chr(10).join(_targets(evals))}
{_children(record)}{notes}
"""


def main(argv: list[str] | None = None) -> None:
    """``python -m postlens.organism.card EVAL_JSON OUT_MD [NOTES_MD]``."""
    args = argv if argv is not None else sys.argv[1:]
    record = json.loads(Path(args[0]).read_text())
    notes = Path(args[2]).read_text() if len(args) > 2 else ""
    Path(args[1]).write_text(render_card(record, notes))


if __name__ == "__main__":
    main()
