"""The plain script a researcher writes instead of `postlens forks` on given completions.

It loads both models and their tokenizer with transformers, tokenizes each JSONL row's
``prompt`` + ``completion``, and runs the two teacher-forced forward passes in batches of 16,
keeping nothing: the floor a fork-scoring command cannot beat (`run_all.py` times both as
fresh processes, start-up included).

Usage: ``python benchmarks/bare_forks.py BASE POST SEQUENCES.jsonl``
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

BATCH = 16


def main() -> None:
    base, post, path = sys.argv[1:4]
    tok = AutoTokenizer.from_pretrained(base)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    models = [AutoModelForCausalLM.from_pretrained(p, dtype="auto").eval() for p in (base, post)]
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    ids = [tok(r["prompt"] + r["completion"])["input_ids"] for r in rows]
    with torch.no_grad():
        for i in range(0, len(ids), BATCH):
            batch = ids[i : i + BATCH]
            width = max(map(len, batch))
            x = torch.tensor([b + [pad] * (width - len(b)) for b in batch])
            mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch])
            for m in models:
                _ = m(input_ids=x, attention_mask=mask).logits


if __name__ == "__main__":
    main()
