"""Benchmark: fork scoring throughput vs the bare forward passes, and vs materialising logits.

For a tiny-width model with a 50k vocabulary (where logits dominate) and, when installed, the
organism, on the same batches, each approach in its own subprocess (so max RSS is its own):

(a) floor: the two bare forward passes (base and post) of plain `transformers` models;
(b) naive: the same passes, keeping every batch's full logits, then computing the statistics;
(c) postlens: `score_forks`, which reduces logits to per-position statistics batch by batch.

Usage: ``python benchmarks/bench_forks.py [--sequences 256] [--length 128]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

COMMON = """
import sys, time, torch
torch.set_num_threads(2)
from postlens import ModelPair
from postlens.diffs.forks import Sequence, score_forks, ForkConfig
base, post, n, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pair = ModelPair.load(base, post, backend="nnsight")
g = torch.Generator().manual_seed(0)
vocab = pair.base.hf_model.config.vocab_size
ids = torch.randint(3, vocab, (n, length), generator=g)
seqs = [Sequence([1] + row[:7].tolist(), row[7:length - 1].tolist()) for row in ids]
batches = [torch.tensor([s.prompt_ids + s.completion_ids for s in seqs[i:i + 32]]) for i in range(0, n, 32)]
"""
FLOOR = (
    COMMON
    + """
t = time.perf_counter()
with torch.no_grad():
    for b in batches:
        pair.base.hf_model(b).logits; pair.post.hf_model(b).logits
print(time.perf_counter() - t)
"""
)
NAIVE = (
    COMMON
    + """
from postlens.diffs.divergence import position_stats
t = time.perf_counter()
with torch.no_grad():
    lb = torch.cat([pair.base.hf_model(b).logits[:, 7:-1] for b in batches]).flatten(0, 1)
    lp = torch.cat([pair.post.hf_model(b).logits[:, 7:-1] for b in batches]).flatten(0, 1)
    stats = position_stats(lb, lp)
print(time.perf_counter() - t)
"""
)
OURS = (
    COMMON
    + """
t = time.perf_counter()
score_forks(pair, seqs, ForkConfig(batch_size=32), progress=False)
print(time.perf_counter() - t)
"""
)


def run(script: str, *args: str) -> tuple[float, float]:
    wrapper = (
        script
        + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    seconds, rss = out.stdout.strip().splitlines()[-2:]
    return float(seconds), float(rss)


def bench(label: str, base: str, post: str, n: int, length: int) -> None:
    tokens = n * (length - 8)
    args = (base, post, str(n), str(length))
    floor, floor_rss = run(FLOOR, *args)
    ours, ours_rss = run(OURS, *args)
    naive, naive_rss = run(NAIVE, *args)
    print(f"\n== {label}: {n} sequences x {length} tokens, {tokens} scored positions")
    print(
        f"floor (2 bare forwards) {floor:6.2f} s  {tokens / floor:9.0f} tok/s  peak {floor_rss:6.0f} MiB"
    )
    print(
        f"postlens forks          {ours:6.2f} s  {tokens / ours:9.0f} tok/s  peak {ours_rss:6.0f} MiB"
    )
    print(
        f"naive (keep all logits) {naive:6.2f} s  {tokens / naive:9.0f} tok/s  peak {naive_rss:6.0f} MiB"
    )
    print(
        f"postlens throughput vs floor: {floor / ours:.2f}x (target >= 0.8x); vs naive: {naive / ours:.2f}x; peak memory naive/postlens: {naive_rss / ours_rss:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=256)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()
    from postlens.testing import save_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        big = {
            "vocab_size": 50_000,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 256,
        }
        base = save_tiny_model(Path(tmp) / "base", "llama", seed=0, **big)
        post = save_tiny_model(Path(tmp) / "post", "llama", seed=1, **big)
        bench("50k-vocabulary tiny model", str(base), str(post), args.sequences, args.length)
    from postlens.specs import organism_path

    if (organism_path("rl") / "config.json").is_file():
        bench("organism base vs rl", "organism:base", "organism:rl", args.sequences, args.length)


if __name__ == "__main__":
    main()
