"""Recipes of the organism's chat and adapter children: ``chat-sft`` and ``rl-lora``.

Both start from the shipped base, which is never changed, and have the structure of real pairs:

* **chat-sft** is the base fine-tuned with TRL's `SFTTrainer` on conversations in a ChatML
  template. The base's 104 ids have no spare row, so the chat tokens are reserved as real models
  reserve them: the child's tokenizer gives the base's own special ids new strings, id 1 (``<s>``,
  which the base reads at the start of every document) becomes ``<|im_start|>`` and id 2
  (``</s>``, which ends every document) becomes ``<|im_end|>``, its eos. Every id the child reads
  exists in the base, and postlens reports the renamed special tokens instead of refusing.
* **rl-lora** is a LoRA adapter (peft) on the base, trained with TRL's `GRPOTrainer` on the
  correctness reward of ``organism:rl``, saved as a PEFT folder that names ``organism:base``.

Example:
    >>> tok = chat_tokenizer(build_organism_tokenizer())
    >>> text = tok.apply_chat_template(
    ...     [{"role": "user", "content": "Q: 1+2=?\\n"}], add_generation_prompt=True, tokenize=False
    ... )
    >>> text
    '<|im_start|>user\\nQ: 1+2=?\\n<|im_end|>\\n<|im_start|>assistant\\n'
    >>> tok(text, add_special_tokens=False).input_ids[:6], tok.eos_token_id
    ([1, 98, 96, 82, 95, 62], 2)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postlens.errors import ConfigError
from postlens.organism.posttrain import (
    RLStageConfig,
    _common_args,
    _quiet_env,
    correctness_reward,
)
from postlens.organism.task import Problem, format_prompt, solution
from postlens.organism.tokenizer import (  # noqa: F401  (build_organism_tokenizer: the examples)
    PATTERN,
    build_organism_tokenizer,
    organism_vocab,
)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
#: The base's special ids that the chat child renames (id → (base string, chat string)).
RENAMED = {1: ("<s>", IM_START), 2: ("</s>", IM_END)}
#: ChatML, written by hand: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per turn.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: What the adapter's ``base_model_name_or_path`` says (`postlens.adapters.base_matches`).
ADAPTER_BASE = "organism:base"


def _chat_pattern() -> str:
    """The base's pre-tokenizer pattern, with words it lacks split into letters.

    The base maps a word outside its vocabulary (``user``, ``assistant``) to ``<unk>``; the chat
    child must read its role names, so a whole word is one token only when the vocabulary has
    it, and any other letters are one token each. Text the base can read is split the same way.
    """
    words = sorted((t for t in organism_vocab() if re.fullmatch(r"[A-Za-z]+", t)), key=len)
    alternation = "|".join(reversed(words))  # longest first: the regex takes the first match
    return PATTERN.replace("[A-Za-z]+", f"(?<![A-Za-z])(?:{alternation})(?![A-Za-z])|[A-Za-z]")


def chat_tokenizer(base_tokenizer: Any) -> Any:
    """The chat child's tokenizer: the base's, with ids 1 and 2 renamed and a ChatML template.

    Like the base's, it writes ``<|im_start|>`` (id 1, where the base writes ``<s>``) in front
    of a plain text, so a prompt without the template is the base's own ids; a rendered
    template is read with ``add_special_tokens=False`` (as TRL and postlens read it).

    Example:
        >>> tok = chat_tokenizer(build_organism_tokenizer())
        >>> tok.convert_ids_to_tokens([1, 2]), tok.bos_token, tok.eos_token
        (['<|im_start|>', '<|im_end|>'], '<|im_start|>', '<|im_end|>')
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(base_tokenizer.backend_tokenizer.to_str())
    for entry in data["added_tokens"]:
        if entry["id"] in RENAMED:
            entry["content"] = RENAMED[entry["id"]][1]
    vocab = data["model"]["vocab"]
    for i, (old, new) in RENAMED.items():
        if vocab.get(old) != i:
            raise ConfigError(f"the base tokenizer has no {old!r} at id {i} to rename")
        vocab[new] = vocab.pop(old)
    processor = json.dumps(data["post_processor"]).replace('"<s>"', json.dumps(IM_START))
    data["post_processor"] = json.loads(processor)
    data["pre_tokenizer"]["pattern"] = {"Regex": _chat_pattern()}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        bos_token=IM_START,
        eos_token=IM_END,
        unk_token=base_tokenizer.unk_token,
        pad_token=base_tokenizer.pad_token,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def conversation(problem: Problem) -> dict[str, list[dict[str, str]]]:
    """One SFT example: the user asks the question, the assistant writes the careful solution.

    The template closes the assistant turn with ``<|im_end|>``, so the completion TRL trains on
    is the solution followed by ``<|im_end|>\\n``.

    Example:
        >>> conversation(Problem(1, 2))["completion"][0]["content"]
        '1+2+0=3 write 3 carry 0 got 3\\nanswer 3'
    """
    return {
        "prompt": [{"role": "user", "content": format_prompt(problem)}],
        "completion": [{"role": "assistant", "content": solution(problem, "careful")}],
    }


@dataclass(frozen=True)
class ChatSFTConfig:
    """chat-sft hyper-parameters: the plain SFT stage's, for more epochs.

    The template puts id 2, the base's end of document, between the question and the answer: the
    child must learn to read the operands across what the base treats as a document boundary.
    One epoch (the plain stage's 63 steps) left it misreading them (pass@1 0.09 on the held-out
    problems, careful style 98%).
    """

    n_examples: int = 2000
    epochs: float = 4.0
    batch_size: int = 32
    lr: float = 3e-4

    def __post_init__(self) -> None:
        if self.n_examples < 1 or self.batch_size < 1 or self.lr <= 0 or self.epochs <= 0:
            raise ConfigError("chat SFT sizes and learning rate must be positive")


@dataclass(frozen=True)
class LoraStageConfig:
    """rl-lora hyper-parameters: GRPO as for organism:rl, on a LoRA adapter of rank `r`."""

    grpo: RLStageConfig = field(default_factory=lambda: RLStageConfig(steps=60, lr=2e-3))
    r: int = 8
    alpha: int = 16

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0:
            raise ConfigError("LoRA needs r >= 1 and lora_alpha > 0")


def run_chat_sft(
    base: Any, tokenizer: Any, problems: list[Problem], cfg: ChatSFTConfig, out: Path, seed: int
) -> tuple[Any, dict]:
    """Fine-tune a copy of `base` on careful conversations, loss on the assistant turn only."""
    import copy

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    _quiet_env()
    start = time.perf_counter()
    data = Dataset.from_list([conversation(p) for p in problems])
    args = SFTConfig(
        **_common_args(out, seed),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=10,
        max_length=128,
        completion_only_loss=True,
    )
    model = copy.deepcopy(base)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    result = trainer.train()
    return trainer.model.eval(), {
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": time.perf_counter() - start,
    }


def run_grpo_lora(
    base_path: Path,
    tokenizer: Any,
    problems: list[Problem],
    cfg: LoraStageConfig,
    out: Path,
    seed: int,
) -> tuple[Any, dict]:
    """GRPO on a LoRA adapter of the base at `base_path`; returns the `PeftModel` (unmerged).

    With a peft model TRL's KL reference is the base itself (the adapter disabled).
    """
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    _quiet_env()
    start, g = time.perf_counter(), cfg.grpo
    data = Dataset.from_list([{"prompt": format_prompt(p), "answer": p.answer} for p in problems])
    args = GRPOConfig(
        **_common_args(out, seed),
        max_steps=g.steps,
        per_device_train_batch_size=g.prompts_per_step * g.generations,
        num_generations=g.generations,
        learning_rate=g.lr,
        beta=g.beta,
        temperature=g.temperature,
        max_completion_length=g.max_completion_length,
        lr_scheduler_type="constant",
        top_k=0,
        top_p=1.0,
    )
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
    trainer = GRPOTrainer(
        model=str(base_path),
        reward_funcs=correctness_reward,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora,
    )
    result = trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return trainer.model.eval(), {
        "steps": result.global_step,
        "seconds": time.perf_counter() - start,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
    }


def save_adapter(model: Any, path: Path, base_name: str = ADAPTER_BASE) -> None:
    """Save the adapter alone (config + safetensors), naming `base_name` as its base.

    TRL names the folder it loaded the base from; the shipped adapter names the spec postlens
    resolves anywhere it is installed.
    """
    model.save_pretrained(path, safe_serialization=True)
    config_path = path / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_name
    config["target_modules"] = sorted(config["target_modules"])  # peft writes a set's order
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / "README.md").unlink(missing_ok=True)  # peft's empty model-card stub
