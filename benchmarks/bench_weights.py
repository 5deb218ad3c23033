"""Benchmark: postlens weight shifts vs the floor (reading the bytes) and the naive approach.

Builds two synthetic Llama-shaped checkpoints of about 1 GB each (fp32, 4 shards with an index;
and a bf16 variant), then measures in one run, each approach in its own subprocess so that peak
memory (max RSS) is its own (floor and postlens: best of three, interleaved):

(a) floor: read every byte of both checkpoints once, page cache warm (numpy memmap sum);
(b) naive: ``AutoModelForCausalLM.from_pretrained`` both, loop over the state dicts;
(c) postlens: ``compare_weights`` (with its C kernel, and for reference without it: the torch
    ops used where the extension is not built).

Usage: ``python benchmarks/bench_weights.py [--layers 16] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN, INTER, VOCAB = 1024, 2816, 32000


def tensors(layers: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    yield "model.embed_tokens.weight", torch.randn(VOCAB, HIDDEN, generator=g) * 0.02
    yield "model.norm.weight", torch.ones(HIDDEN)
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield p + f"self_attn.{name}.weight", torch.randn(HIDDEN, HIDDEN, generator=g) * 0.02
        yield p + "mlp.gate_proj.weight", torch.randn(INTER, HIDDEN, generator=g) * 0.02
        yield p + "mlp.up_proj.weight", torch.randn(INTER, HIDDEN, generator=g) * 0.02
        yield p + "mlp.down_proj.weight", torch.randn(HIDDEN, INTER, generator=g) * 0.02
        yield p + "input_layernorm.weight", torch.ones(HIDDEN)
        yield p + "post_attention_layernorm.weight", torch.ones(HIDDEN)


def write_checkpoint(
    folder: Path, layers: int, dtype: torch.dtype, perturb: bool, shards: int = 4
) -> None:
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(123)
    items = []
    for name, t in tensors(layers, seed=0):
        if perturb:  # a sparse update: 20% of the entries move
            mask = torch.rand(t.shape, generator=g) < 0.2
            t = t + mask * torch.randn(t.shape, generator=g) * 1e-3
        items.append((name, t.to(dtype)))
    per = -(-len(items) // shards)
    weight_map = {}
    for s in range(shards):
        shard = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        chunk = dict(items[s * per : (s + 1) * per])
        save_file(chunk, str(folder / shard))
        weight_map |= dict.fromkeys(chunk, shard)
    total = sum(t.numel() * t.element_size() for _, t in items)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": layers,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "vocab_size": VOCAB,
        "tie_word_embeddings": True,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "torch_dtype": "float32" if dtype == torch.float32 else "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config))


FLOOR = """
import numpy as np, sys, pathlib, time
files = [f for d in sys.argv[1:] for f in sorted(pathlib.Path(d).glob('*.safetensors'))]
t = time.perf_counter(); total = 0
for f in files:
    m = np.memmap(f, dtype=np.uint64, mode='r', shape=(f.stat().st_size // 8,))
    total += int(m.sum(dtype=np.uint64))
print(time.perf_counter() - t)
"""
NAIVE = """
import sys, time, torch
from transformers import AutoModelForCausalLM
t = time.perf_counter()
a = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).state_dict()
b = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32).state_dict()
out = {}
for k in a:
    d = (b[k] - a[k]).double()
    out[k] = (d.norm() / a[k].double().norm(), d.abs().max(), d.abs().mean(), (d != 0).float().mean(), (d.abs() > 1e-5).float().mean())
print(time.perf_counter() - t)
"""
POSTLENS = """
import sys, time
from postlens.diffs.weights import stats as weight_stats
from postlens.diffs.weights.compare import compare_weights
if sys.argv[3:] == ["torch"]:  # the fallback where the C kernel is not built
    weight_stats._kernels = lambda: None
t = time.perf_counter()
compare_weights(sys.argv[1], sys.argv[2], progress=False)
print(time.perf_counter() - t)
"""
BASELINE = """
import time, torch, transformers, numpy
from postlens.diffs.weights import compare as weights
print(0.0)
"""


def run(script: str, *args: str) -> tuple[float, float]:
    """(seconds reported by the script, peak RSS in MiB of its process)."""
    # VmHWM, not ru_maxrss: ru_maxrss survives fork+exec, so every child would report this
    # (checkpoint-building) process's peak instead of its own.
    wrapper = script + (
        "\nimport re, pathlib; print(int(re.search(r'VmHWM:\\s+(\\d+)',"
        " pathlib.Path('/proc/self/status').read_text()).group(1)) / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True
    )
    seconds, rss = out.stdout.strip().splitlines()[-2:]
    return float(seconds), float(rss)


def bench(base: Path, post: Path, label: str) -> None:
    size = sum(f.stat().st_size for d in (base, post) for f in d.glob("*.safetensors"))
    run(FLOOR, str(base), str(post))  # warm the page cache
    # Best of three, interleaved, for the floor and postlens: the memory bandwidth of a shared
    # machine drifts by 2x between seconds, and the ratio should compare like with like.
    floors, ours_runs = [], []
    for _ in range(3):
        floors.append(run(FLOOR, str(base), str(post)))
        ours_runs.append(run(POSTLENS, str(base), str(post)))
    (floor, floor_rss), (ours, ours_rss) = min(floors), min(ours_runs)
    _, baseline_rss = run(BASELINE)
    fallback, _ = run(POSTLENS, str(base), str(post), "torch")
    naive, naive_rss = run(NAIVE, str(base), str(post))
    largest = VOCAB * HIDDEN * 4 / 2**20
    print(f"\n== {label}: {size / 2**30:.2f} GiB in both checkpoints")
    print(f"floor    {floor:7.2f} s  ({size / floor / 2**30:.2f} GiB/s)  peak {floor_rss:7.0f} MiB")
    print(f"naive    {naive:7.2f} s                       peak {naive_rss:7.0f} MiB")
    print(f"postlens {ours:7.2f} s  ({size / ours / 2**30:.2f} GiB/s)  peak {ours_rss:7.0f} MiB")
    print(
        f"  without the C kernel (torch ops) {fallback:.2f} s = {floor / fallback:.2f}x the floor"
    )
    print(f"postlens speed vs floor: {floor / ours:.2f}x (target >= 0.5x)")
    print(f"postlens vs naive: {naive / ours:.2f}x faster (target >= 3x)")
    print(
        f"postlens peak over interpreter baseline ({baseline_rss:.0f} MiB): {ours_rss - baseline_rss:.0f} MiB "
        f"= {(ours_rss - baseline_rss) / largest:.2f}x the largest tensor in fp32 ({largest:.0f} MiB; target <= ~3x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=16, help="16 layers ≈ 1 GB in fp32")
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the checkpoints here and keep them"
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="postlens-bench-"))
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        base, post = root / f"{label}-base", root / f"{label}-post"
        if not base.exists():
            t = time.perf_counter()
            write_checkpoint(base, args.layers, dtype, perturb=False)
            write_checkpoint(post, args.layers, dtype, perturb=True)
            print(f"built {label} checkpoints in {time.perf_counter() - t:.0f} s")
        bench(base, post, label)
    if args.keep is None:
        import shutil

        shutil.rmtree(root)


if __name__ == "__main__":
    main()
