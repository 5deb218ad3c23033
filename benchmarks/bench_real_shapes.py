"""Benchmark at real shapes: every costly path of postlens against its floor, measured in one run.

On synthetic pairs built from configs (`real_shapes`: a Qwen2-0.5B-shaped pair, 494M parameters,
and a 114M one, both with Qwen's 151936-token vocabulary, in bfloat16 shards), each line is a
ratio against a baseline timed in the same process, interleaved with it (best of the repeats):

* sampling: `sample_completions` tokens/s vs plain ``model.generate`` on the same batch, in the
  same dtype (target ≥ 0.9x); and plain generate in float32 vs the compute dtype;
* forks: `score_forks` vs the two bare forwards (target ≥ 0.8x);
* activations without patching vs its floor: the two bare forwards plus the per-layer
  unembeddings its sampled logit lens needs (target ≥ 0.7x); the default (attribution
  patching) vs that floor plus one bare forward-and-backward of the base;
* attribution vs exact patching: the speed-up, and the Spearman correlation of their
  ``patch_recovered`` over the layers;
* `postlens weights` command (a fresh process, start-up included) vs its call (target ≤ 2x + 1 s);
* the default ``postlens report`` (weights, forks, activations on a prompt file) as a command:
  wall time (target ≤ 10 min at the 0.5B shape) and peak memory (max RSS; target ≤ 1.5x the
  pair's weights in the compute dtype + 2 GB), and the peak with half the prompts (twice the
  prompts must not raise it).

The machine's load (``os.getloadavg``) is printed with every figure: on a shared machine only
the ratios mean something. ``--device cuda`` runs the same measurements on a GPU.

Usage: ``python benchmarks/bench_real_shapes.py [--shapes qwen0.5b 100m] [--quick]
[--device cpu|cuda] [--dtype bfloat16] [--root DIR] [--no-report]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from real_shapes import SHAPES, build_pair, n_params  # noqa: E402

HERE = Path(__file__).parent
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def run_worker(args: argparse.Namespace, base: str, post: str) -> dict:
    """The in-process measurements (`bench_real_shapes_worker.py`) in a fresh interpreter."""
    cmd = [
        sys.executable,
        str(HERE / "bench_real_shapes_worker.py"),
        base,
        post,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--threads",
        str(args.threads),
    ]
    cmd += ["--quick"] if args.quick else []  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_command(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (GiB) of a command run in a fresh process.

    The CPU time is printed too: on a machine shared with other jobs, a command's wall time
    includes waiting for a core (its start-up most of all).
    """
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "dt = time.perf_counter() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "sys.stderr.write(r.stderr[-3000:] if r.returncode else ''); "
        "print(dt, u.ru_utime + u.ru_stime, u.ru_maxrss, r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
    seconds, cpu, rss, code = out.stdout.split()
    if int(code):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return float(seconds), float(cpu), int(rss) / 2**20


def weights_call(base: str, post: str) -> float:
    """`compare_children` timed inside a process that has already imported it."""
    code = (
        "import sys, time; from postlens.diffs.weights.compare import WeightDiffConfig, compare_children; "
        "t = time.perf_counter(); compare_children(sys.argv[1], {'post': sys.argv[2]}, "
        "WeightDiffConfig()); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code, base, post], capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def prompt_file(root: Path, n: int) -> Path:
    """`n` short arithmetic prompts, one per line (the report samples completions for them)."""
    path = root / f"prompts{n}.txt"
    path.write_text("".join(f"q: {i * 37 % 500} + {i * 11 % 300} = ?\n" for i in range(n)))
    return path


def report_command(args, base, post, prompts: Path, n: int, out: Path) -> list[str]:
    cmd = ["postlens", "report", base, post, "--prompts", str(prompts), "--n-prompts", str(n),
           "--out", str(out), "--dtype", args.dtype, "--device", args.device]  # fmt: skip
    return cmd + (["--max-new-tokens", "32"] if args.quick else [])


def bench_shape(args: argparse.Namespace, shape: str, root: Path) -> dict:
    base, post = build_pair(shape, root)
    params = n_params(base)
    weights_gib = 2 * params * BYTES[args.dtype] / 2**30
    print(f"\n== {shape}: {params / 1e6:.0f}M parameters per model, pair weights "
          f"{weights_gib:.2f} GiB in {args.dtype}, device {args.device}  [{load()}]")  # fmt: skip
    w = run_worker(args, base, post)
    s = w["sampling"]
    print(f"sampling   {s['ours_tps']:8.1f} tok/s vs plain generate {s['plain_tps']:8.1f} tok/s: "
          f"{s['ours_tps'] / s['plain_tps']:.2f}x (target >= 0.9)  [{s['load']}]")  # fmt: skip
    if "fp32_tps" in s:
        print(f"           plain generate in float32 {s['fp32_tps']:.1f} tok/s: {args.dtype} is "
              f"{s['plain_tps'] / s['fp32_tps']:.2f}x float32")  # fmt: skip
    f = w["forks"]
    print(f"forks      {f['ours']:7.2f} s vs two bare forwards {f['floor']:7.2f} s: "
          f"{f['floor'] / f['ours']:.2f}x (target >= 0.8; first call {f['first']:.1f} s)  "
          f"[{f['load']}]")  # fmt: skip
    a = w["activations"]
    print(f"activations (no patching) {a['none']:7.2f} s vs floor {a['floor']:7.2f} s (2 forwards "
          f"{a['forwards']:.2f} s + lens unembeddings {a['lens']:.2f} s): "
          f"{a['floor'] / a['none']:.2f}x (target >= 0.7; warm-up compiling its kernels "
          f"{a['first']:.1f} s)  [{a['load']}]")  # fmt: skip
    print(
        f"activations (default: attribution) {a['default']:7.2f} s vs floor + base "
        f"forward-backward {a['floor_grad']:7.2f} s: {a['floor_grad'] / a['default']:.2f}x"
    )
    p = w["patching"]
    print(
        f"attribution {p['attribution']:7.2f} s vs exact patching {p['exact']:7.2f} s: "
        f"{p['exact'] / p['attribution']:.1f}x faster; Spearman of patch_recovered over "
        f"layers {p['spearman']:.2f}, same top layer: {p['same_top']}  [{p['load']}]"
    )
    call = weights_call(base, post)
    cmd, cpu, _ = timed_command(["postlens", "weights", base, post])
    print(f"weights    command {cmd:.2f} s (CPU {cpu:.2f} s) vs call {call:.2f} s: target "
          f"<= 2 x {call:.2f} + 1 = {2 * call + 1:.2f}: {cmd <= 2 * call + 1}  [{load()}]")  # fmt: skip
    result = {"shape": shape, "params": params, "worker": w, "weights": [cmd, call]}
    if not args.no_report:
        n = 8 if args.quick else 32
        half = report_command(args, base, post, prompt_file(root, n // 2), n // 2, root / "r.html")
        full = report_command(args, base, post, prompt_file(root, n), n, root / "r.html")
        t_half, _, peak_half = timed_command(half)
        t_full, cpu_full, peak_full = timed_command(full)
        budget = 1.5 * weights_gib + 2
        print(f"report     default sections, {n} prompts: {t_full / 60:.1f} min (CPU "
              f"{cpu_full / 60:.1f} min; target <= 10), "
              f"peak {peak_full:.2f} GiB (target <= {budget:.2f})  [{load()}]")  # fmt: skip
        print(f"           {n // 2} prompts: {t_half / 60:.1f} min, peak {peak_half:.2f} GiB; twice "
              f"the prompts raise the peak {peak_full / peak_half:.2f}x")  # fmt: skip
        result["report"] = {"n": n, "seconds": [t_half, t_full], "peak_gib": [peak_half, peak_full]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=["qwen0.5b", "100m"], choices=list(SHAPES))
    parser.add_argument("--quick", action="store_true", help="fewer, shorter sequences")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=list(BYTES))
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads of the in-process timings (one: two on a shared two-core machine "
        "oversubscribe OpenMP and make timings erratic); the commands use torch's default",
    )  # fmt: skip
    parser.add_argument("--root", type=Path, help="keep the checkpoints here (reused)")
    parser.add_argument("--no-report", action="store_true", help="skip the report runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        results = [bench_shape(args, shape, root) for shape in args.shapes]
        print(f"\n(total {time.perf_counter() - t:.0f} s)  [{load()}]")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
