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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.errors import ConfigError
from postlens.organism.posttrain import RLStageConfig, SFTStageConfig, run_grpo, sft_on_rows
from postlens.organism.task import Problem, format_prompt, solution
from postlens.organism.tokenizer import (  # noqa: F401  (build_organism_tokenizer: the examples)
    PATTERN,
    build_organism_tokenizer,
    organism_vocab,
)

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

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
#: What the adapter's ``base_model_name_or_path`` says (`postlens.models.adapters.base_matches`).
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


def chat_tokenizer(base_tokenizer: Tokenizer) -> Any:
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


#: chat-sft trains as the plain SFT stage (`SFTStageConfig`), for more epochs. The template puts
#: id 2, the base's end of document, between the question and the answer: the child must learn to
#: read the operands across what the base treats as a document boundary. One epoch (the plain
#: stage's 63 steps) left it misreading them (pass@1 0.09 on the held-out problems, careful 98%).
CHAT_SFT_EPOCHS = 4.0


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
    base: Any,
    tokenizer: Tokenizer,
    problems: list[Problem],
    cfg: SFTStageConfig,
    out: Path,
    seed: int,
) -> tuple[Any, dict]:
    """Fine-tune a copy of `base` on careful conversations, loss on the assistant turn only."""
    return sft_on_rows(base, tokenizer, [conversation(p) for p in problems], cfg, out, seed)


def run_grpo_lora(
    base_path: Path,
    tokenizer: Tokenizer,
    problems: list[Problem],
    cfg: LoraStageConfig,
    out: Path,
    seed: int,
) -> tuple[Any, dict]:
    """GRPO on a LoRA adapter of the base at `base_path`; returns the `PeftModel` (unmerged).

    With a peft model TRL's KL reference is the base itself (the adapter disabled).
    """
    from peft import LoraConfig

    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
    return run_grpo(base_path, tokenizer, problems, cfg.grpo, out, seed, peft_config=lora)


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
