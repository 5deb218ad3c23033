"""The in-process half of `bench_real_shapes.py`: one pair loaded once, each path timed
interleaved with its floor (best of the repeats); prints one JSON line.

Usage: ``python benchmarks/bench_real_shapes_worker.py BASE POST [--quick] [--device cpu]
[--dtype bfloat16] [--threads N] [--stages sampling forks activations patching]``
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from postlens import ModelPair
from postlens.diffs.activations.compute import ActivationConfig, activation_shifts
from postlens.diffs.forks.compute import ForkConfig, Sequence, score_forks
from postlens.sampling.generation import sample_completions, until_stop

PROMPT = 8
STAGES = ("sampling", "forks", "activations", "patching")


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def best(fns: dict, repeats: int, min_seconds: float = 0.5) -> dict[str, float]:
    """Each function's best time per call over `repeats` rounds, the functions interleaved per
    round. A call shorter than `min_seconds` is repeated within a round until the round lasts
    about that long (the count fixed by one untimed calibration call): single calls of a few
    milliseconds on a shared machine measure the scheduler, not the code."""
    reps = {}
    for k, fn in fns.items():
        t = time.perf_counter()
        fn()
        reps[k] = max(1, min(50, int(min_seconds / max(time.perf_counter() - t, 1e-6))))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(reps[k]):
                fn()
            times[k].append((time.perf_counter() - t) / reps[k])
    return {k: min(v) for k, v in times.items()}


def random_seqs(vocab: int, n: int, length: int, seed: int = 0) -> list[Sequence]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (n, length), generator=g)
    return [Sequence(r[:PROMPT].tolist(), r[PROMPT:].tolist()) for r in ids]


def bare_forwards(models, seqs: list[Sequence], batch: int) -> None:
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            ids = torch.tensor([s.prompt_ids + s.completion_ids for s in seqs[i : i + batch]])
            for m in models:
                _ = m(ids.to(m.device)).logits  # the floor computes full logits, as HF does


def sampling(pair: ModelPair, args, quick: bool) -> dict:
    n, new = (8, 16) if quick else (32, 64)
    prompts = [f"q: {i * 37 % 500} + {i * 11 % 300} = ?\n" for i in range(n)]
    tok, model = pair.tokenizer, pair.post.hf_model
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
    stop = [tok.eos_token_id]
    counted: dict[str, int] = {}

    def ours() -> None:
        out = sample_completions(pair.post, tok, prompts, n=1, max_new_tokens=new,
                                 batch_size=n, progress=False, stop_ids=stop)  # fmt: skip
        counted["ours"] = sum(len(s.completion_ids) for s in out)

    def plain(m=model, key="plain") -> None:
        torch.manual_seed(0)
        with torch.no_grad():
            out = m.generate(**{k: v.to(m.device) for k, v in enc.items()}, do_sample=True,
                             max_new_tokens=new, temperature=1.0, top_p=1.0, top_k=None,
                             pad_token_id=tok.pad_token_id, eos_token_id=stop)  # fmt: skip
        width = enc["input_ids"].shape[1]
        counted[key] = sum(len(until_stop(r[width:].tolist(), stop)) for r in out)

    t = best({"ours": ours, "plain": plain}, 3 if quick else 2)  # its calibration warms up both
    result = {k: counted[k] / t[k] for k in t}
    figures = {"ours_tps": result["ours"], "plain_tps": result["plain"], "load": load()}
    if not quick and args.dtype != "float32":
        from transformers import AutoModelForCausalLM

        fp32 = AutoModelForCausalLM.from_pretrained(args.post, dtype=torch.float32).eval()
        t32 = best({"fp32": lambda: plain(fp32.to(model.device), "fp32")}, 1)
        figures["fp32_tps"] = counted["fp32"] / t32["fp32"]
        del fp32
    return figures


def forks(pair: ModelPair, quick: bool) -> dict:
    seqs = random_seqs(len(pair.tokenizer), 16 if quick else 64, 72)
    models = (pair.base.hf_model, pair.post.hf_model)
    cfg = ForkConfig()
    t0 = time.perf_counter()
    score_forks(pair, seqs, cfg, progress=False)  # first call: any torch.compile happens here
    first = time.perf_counter() - t0
    t = best({"floor": lambda: bare_forwards(models, seqs, cfg.batch_size),
              "ours": lambda: score_forks(pair, seqs, cfg, progress=False)}, 3)  # fmt: skip
    return {**t, "first": first, "load": load()}


def lens_unembeddings(pair: ModelPair, seqs: list[Sequence], cfg: ActivationConfig) -> None:
    """The logit lens's own floor: final norm and unembedding of the sampled rows, per layer."""
    with torch.no_grad():
        for i in range(0, len(seqs), cfg.batch_size):
            rows = sum(min(cfg.lens_positions, len(s.prompt_ids) + len(s.completion_ids))
                       for s in seqs[i : i + cfg.batch_size])  # fmt: skip
            for w in ("base", "post"):
                m = pair[w].hf_model
                h = torch.randn(rows, m.config.hidden_size, dtype=m.dtype, device=m.device)
                for _ in range(pair.n_layers):
                    m.get_output_embeddings()(m.model.norm(h)).float()


def base_forward_backward(pair: ModelPair, seqs: list[Sequence], cfg: ActivationConfig) -> None:
    """A bare forward with autograd and one backward to the residual (no parameter grads)."""
    m = pair.base.hf_model
    for i in range(0, len(seqs), cfg.grad_batch_size):
        ids = torch.tensor(
            [s.prompt_ids + s.completion_ids for s in seqs[i : i + cfg.grad_batch_size]]
        )
        emb = m.get_input_embeddings()(ids.to(m.device)).detach().requires_grad_()
        logits = m(inputs_embeds=emb).logits
        torch.autograd.grad(logits, emb, grad_outputs=torch.ones_like(logits))


def activations(pair: ModelPair, quick: bool) -> dict:
    seqs = random_seqs(len(pair.tokenizer), 8 if quick else 32, 72, seed=1)
    models = (pair.base.hf_model, pair.post.hf_model)
    none, default = ActivationConfig(patching="none"), ActivationConfig()
    # Warm-up, timed: the fused kernels compile here (the default uses them above
    # COMPILE_ABOVE tokens x vocabulary, so the timed runs below may or may not).
    t0 = time.perf_counter()
    activation_shifts(pair, seqs[:2], ActivationConfig(compile=True), progress=False)
    first = time.perf_counter() - t0
    t = best({
        "forwards": lambda: bare_forwards(models, seqs, none.batch_size),
        "lens": lambda: lens_unembeddings(pair, seqs, none),
        "grad": lambda: base_forward_backward(pair, seqs, default),
        "none": lambda: activation_shifts(pair, seqs, none, progress=False),
        "default": lambda: activation_shifts(pair, seqs, default, progress=False),
    }, 1 if quick else 2)  # fmt: skip
    t["floor"] = t["forwards"] + t["lens"]
    t["floor_grad"] = t["floor"] + t["grad"]
    return {**t, "first": first, "load": load()}


def patching(pair: ModelPair, quick: bool) -> dict:
    from scipy.stats import spearmanr

    seqs = random_seqs(len(pair.tokenizer), 4 if quick else 8, 48, seed=2)
    out: dict = {}

    def run(mode: str) -> None:
        cfg = ActivationConfig(patching=mode)
        out[mode] = [
            x.patch_recovered for x in activation_shifts(pair, seqs, cfg, progress=False).layers
        ]

    t = best({"attribution": lambda: run("attribution"), "exact": lambda: run("exact")}, 1)
    rho = float(spearmanr(out["exact"], out["attribution"]).statistic)
    same = int(np.argmax(out["exact"])) == int(np.argmax(out["attribution"]))
    return {**t, "spearman": rho, "same_top": same, "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("post")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--stages", nargs="*", default=list(STAGES), choices=list(STAGES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pair = ModelPair.load(args.base, args.post, dtype=args.dtype, device=args.device)
    calls = {
        "sampling": lambda: sampling(pair, args, args.quick),
        "forks": lambda: forks(pair, args.quick),
        "activations": lambda: activations(pair, args.quick),
        "patching": lambda: patching(pair, args.quick),
    }
    print(json.dumps({stage: calls[stage]() for stage in args.stages}))


if __name__ == "__main__":
    main()
