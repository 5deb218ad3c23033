"""Benchmark: fork scoring throughput vs the bare forward passes, and vs materialising logits.

On a tiny-width Llama with a 50k vocabulary (where the logits dominate) and, when its checkpoints
exist, the organism, on the same token batches, each approach in its own subprocess (so that the
peak memory, max RSS, is its own):

(a) floor: the two bare forward passes (base and post) of the plain `transformers` models;
(b) naive: the same passes keeping the full logits of the whole corpus, then the statistics
    with the textbook formulas (log_softmax, entropy, KL, JS, argmax, rank, top-5) at once;
(c) postlens: `score_forks` (nnsight backend), which reduces each batch's logits to per-position
    statistics before the next batch; timed on a first call (including any `torch.compile`)
    and then best of three in the same process (the floor too), with the fused kernel and with
    eager reductions (the default picks eager below `COMPILE_ABOVE` positions x vocabulary).

Timings use one thread by default: on a two-core machine shared with anything else, two
threads make timings erratic (OpenMP oversubscription).

Usage: ``python benchmarks/bench_forks.py [--sequences 128] [--length 64] [--widths 64 256]
[--organism-sequences 512]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPT_LEN = 8

COMMON = """
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[5]))
from postlens import ModelPair
from postlens.diffs.forks.compute import ForkConfig, Sequence, score_forks
base, post, n, length, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[6])
pair = ModelPair.load(base, post, backend="nnsight")
vocab = len(pair.tokenizer)
g = torch.Generator().manual_seed(0)
ids = torch.randint(4, vocab, (n, length), generator=g)
P = int(sys.argv[7])
seqs = [Sequence(row[:P].tolist(), row[P:].tolist()) for row in ids]
batches = [ids[i : i + batch] for i in range(0, n, batch)]
models = (pair.base.hf_model, pair.post.hf_model)
result = {}
REPEATS = 3  # best of three, after a first call: a 0.5 s run is noisy


def floor_pass():
    t = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            models[0](b).logits; models[1](b).logits
    return time.perf_counter() - t
"""

FLOOR = """
floor_pass()  # warm-up
result["seconds"] = min(floor_pass() for _ in range(REPEATS))
"""

NAIVE = """
from postlens.diffs.divergence import entropy, js_div, kl_div
t = time.perf_counter()
with torch.no_grad():
    full = [torch.cat([m(b).logits[:, P - 1 : -1] for b in batches]).flatten(0, 1) for m in models]
    lb, lp = (torch.log_softmax(x, -1) for x in full)
    h_b, h_p, kl, js = entropy(lb), entropy(lp), kl_div(lp, lb), js_div(lb, lp)
    arg_b, arg_p = lb.argmax(-1), lp.argmax(-1)
    rank = (lb > lb.gather(-1, arg_p[:, None])).sum(-1) + 1
    top_b, top_p = lb.topk(5, -1), lp.topk(5, -1)
result["seconds"] = time.perf_counter() - t
"""

OURS = """
cfg = ForkConfig(batch_size=batch, compile=sys.argv[8] == "1")
t = time.perf_counter()
first = score_forks(pair, seqs, cfg, progress=False)
result["first_seconds"] = time.perf_counter() - t
# The floor is timed again here, interleaved with postlens, so that the ratio compares runs
# made under the same machine conditions (they drift between processes).
times, floors = [], []
for _ in range(REPEATS):
    floors.append(floor_pass())
    t = time.perf_counter()
    score_forks(pair, seqs, cfg, progress=False)
    times.append(time.perf_counter() - t)
result["seconds"], result["floor_seconds"] = min(times), min(floors)
result["agreement"] = first.summary().agreement
from postlens.diffs.divergence import COMPILE_ABOVE
result["default"] = cfg.compile == (len(seqs) * (length - P) * vocab >= COMPILE_ABOVE)
"""

TAIL = """
import resource
result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def run(script: str, *args: str) -> dict[str, float]:
    """Run one approach in a fresh interpreter; its last stdout line is a JSON dict."""
    out = subprocess.run(
        [sys.executable, "-c", COMMON + script + TAIL, *args], capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(label: str, base: str, post: str, args: argparse.Namespace, n: int) -> dict[str, object]:
    """Measure the approaches on `n` sequences of one pair; print and return the figures."""
    length = args.length
    tokens = n * (length - PROMPT_LEN)
    common = (
        base,
        post,
        str(n),
        str(length),
        str(args.threads),
        str(args.batch_size),
        str(PROMPT_LEN),
    )
    rows = {
        "floor (2 bare forwards)": run(FLOOR, *common, "0"),
        "postlens, fused kernel": run(OURS, *common, "1"),
        "postlens, eager": run(OURS, *common, "0"),
    }
    if not args.no_naive:
        rows["naive (all logits kept)"] = run(NAIVE, *common, "0")
    floor = rows["floor (2 bare forwards)"]["seconds"]
    print(f"\n== {label}: {n} sequences x {length} tokens, {tokens} scored positions")
    print(
        "(x floor: against the floor's own process | against the floor timed again in the "
        "row's process, interleaved; * = the default at this size)"
    )
    for name, r in rows.items():
        own = f"| {r['floor_seconds'] / r['seconds']:4.2f}x" if "floor_seconds" in r else " " * 7
        first = f"  (first call {r['first_seconds']:.2f} s)" if "first_seconds" in r else ""
        mark = "*" if r.get("default") else " "
        print(
            f"{name:25s}{mark} {r['seconds']:7.2f} s {tokens / r['seconds']:9.0f} tok/s "
            f"{floor / r['seconds']:5.2f}x {own} floor  peak {r['peak_mib']:7.0f} MiB{first}"
        )
    ours = next(r for k, r in rows.items() if k.startswith("postlens") and r.get("default"))
    if "naive (all logits kept)" in rows:
        naive = rows["naive (all logits kept)"]
        print(
            f"postlens (default) vs naive: {naive['seconds'] / ours['seconds']:.2f}x faster, "
            f"peak memory {naive['peak_mib'] / ours['peak_mib']:.2f}x smaller"
        )
    return {"label": label, "tokens": tokens, **rows}


def tiny_pair(root: Path, width: int) -> tuple[str, str]:
    """Two random tiny-width Llamas with a 50k vocabulary, saved with a matching tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from postlens.testing import build_tokenizer, save_model, tiny_config

    vocab = 50_000
    extra = tuple(f"<t{i}>" for i in range(vocab - len(build_tokenizer())))
    tok = build_tokenizer(extra)
    paths = []
    for seed, name in ((0, "base"), (1, "post")):
        torch.manual_seed(seed)
        cfg = tiny_config(
            "llama",
            vocab,
            hidden_size=width,
            intermediate_size=2 * width,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=256,
        )
        model = AutoModelForCausalLM.from_config(cfg)
        paths.append(str(save_model(model, tok, root / f"{name}{width}")))
    return paths[0], paths[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=128)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--widths", type=int, nargs="*", default=[64, 256])
    parser.add_argument(
        "--organism-sequences",
        type=int,
        default=512,
        help="more than --sequences: the organism's forward is so cheap that 128 take 0.5 s",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-naive", action="store_true", help="skip the memory-hungry naive run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            base, post = tiny_pair(Path(tmp), width)
            results.append(
                bench(f"50k vocabulary, width {width}", base, post, args, args.sequences)
            )
    from postlens.models.specs import organism_path

    if (organism_path("rl") / "config.json").is_file():
        n = args.organism_sequences
        results.append(bench("organism base vs rl", "organism:base", "organism:rl", args, n))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
