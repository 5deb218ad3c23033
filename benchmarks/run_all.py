"""Every speed target at three sizes, each stage against its floor, in one table.

Sizes: ``organism`` (the shipped arithmetic organism, 0.9M parameters, float32), ``eighth``
(a Llama at one eighth of Llama-3-8B's width, 50k vocabulary, 53M parameters, bfloat16) and
``qwen0.5b`` (a Qwen2-0.5B-shaped Llama, 152k vocabulary, 494M parameters, bfloat16); the
last two are built from configs (`real_shapes`) and kept under ``--root`` for the next run.

Each line is a ratio against a baseline timed in the same run, interleaved with it (best of
the repeats), on the same inputs:

* ``forks command``: ``postlens forks`` on given completions vs the plain script
  (`bare_forks.py`: load both models, run the two teacher-forced forwards), both as fresh
  processes, start-up included (target ≥ 0.8×);
* ``forks``, ``activations``, ``sampling``: the in-process stages of
  `bench_real_shapes_worker.py` against the two bare forwards (≥ 0.8×), the forwards plus the
  logit lens's unembeddings (≥ 0.7×), and plain ``model.generate`` (≥ 0.9×);
* ``weights command``: ``postlens weights`` as a command vs its call (≤ 2× + 1 s);
* ``demo report`` (organism row only): ``postlens report --demo`` wall time (≤ 90 s).

A stage also fails when its ratio at the largest size falls more than `SCALING_SLACK` below
its ratio at the smallest (capped at 1): its cost would be growing faster than its floor's.
The slack absorbs the noise of a shared machine. The machine's load is printed with every size: on a shared machine only the ratios
mean something.

Usage: ``python benchmarks/run_all.py [--quick] [--sizes organism eighth qwen0.5b]
[--root DIR] [--json out.json] [--readme README.md]``. ``--readme`` rewrites the README's
performance table (between its ``run_all`` markers) from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_real_shapes import load, run_worker, timed_command, weights_call  # noqa: E402
from real_shapes import build_pair, n_params  # noqa: E402

HERE = Path(__file__).parent
SIZES = ("organism", "eighth", "qwen0.5b")
#: stage → (how its ratio reads, the target it must reach: every ratio is higher-is-better)
TARGETS = {
    "forks command": ("ours vs bare script", 0.8),
    "forks": ("vs the two bare forwards", 0.8),
    "activations": ("vs forwards + lens unembeddings", 0.7),
    "sampling": ("vs plain generate", 0.9),
    "weights command": ("(2 × call + 1 s) / command", 1.0),
    "demo report": ("90 s / wall", 1.0),
}
SCALING_SLACK = 0.15
MARKERS = ("<!-- run_all:start -->", "<!-- run_all:end -->")


def pair_of(size: str, root: Path) -> tuple[str, str, str]:
    """Base path, post path and dtype of a size."""
    if size == "organism":
        from postlens.models.specs import resolve_spec

        return (
            resolve_spec("organism:base").location,
            resolve_spec("organism:rl").location,
            "float32",
        )
    base, post = build_pair(size, root)
    return base, post, "bfloat16"


def sequences_file(root: Path, n: int) -> Path:
    """`n` prompts in the organism's format with 84-character given completions (96 tokens
    with the character-level tokenizers every size uses)."""
    path = root / f"sequences{n}.jsonl"
    rows = []
    for i in range(n):
        a, b = i * 37 % 500, i * 11 % 300
        prompt = f"Q: {a}+{b}=?"
        rows.append(
            {"prompt": prompt, "completion": (f"{a}+{b}={a + b}. " * 8)[: 96 - len(prompt)]}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def forks_commands(base: str, post: str, seqs: Path, root: Path, repeats: int) -> dict:
    """Best wall time of `postlens forks` and of the bare script, interleaved."""
    ours = ["postlens", "forks", base, post, "--prompts", str(seqs), "--generate", "0",
            "--json", str(root / "forks.json")]  # fmt: skip
    bare = [sys.executable, str(HERE / "bare_forks.py"), base, post, str(seqs)]
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(repeats):
        times["bare"].append(timed_command(bare)[0])
        times["ours"].append(timed_command(ours)[0])
    return {k: min(v) for k, v in times.items()}


def bench_size(size: str, args: argparse.Namespace, root: Path) -> dict:
    base, post, dtype = pair_of(size, root)
    print(f"\n== {size}: {n_params(base) / 1e6:.1f}M parameters per model, {dtype}  [{load()}]",
          flush=True)  # fmt: skip
    stages = ["sampling", "forks", "activations"] + ([] if args.quick else ["patching"])
    worker = argparse.Namespace(device="cpu", dtype=dtype, threads=os.cpu_count() or 1,
                                quick=args.quick, stages=stages)  # fmt: skip
    w = run_worker(worker, base, post)
    s, f, a = w["sampling"], w["forks"], w["activations"]
    n = 16 if args.quick else 64
    cmd = forks_commands(base, post, sequences_file(root, n), root, 2 if args.quick else 3)
    call = weights_call(base, post)
    weights_cmd = timed_command(["postlens", "weights", base, post])[0]
    rows = {
        "forks command": (cmd["bare"] / cmd["ours"], f"{cmd['ours']:.1f} vs {cmd['bare']:.1f} s, {n} × 96 tokens"),
        "forks": (f["floor"] / f["ours"], f"{f['ours']:.2f} vs {f['floor']:.2f} s"),
        "activations": (a["floor"] / a["none"], f"{a['none']:.2f} vs {a['floor']:.2f} s"),
        "sampling": (s["ours_tps"] / s["plain_tps"], f"{s['ours_tps']:.0f} vs {s['plain_tps']:.0f} tok/s"),
        "weights command": ((2 * call + 1) / weights_cmd, f"{weights_cmd:.2f} s vs call {call:.2f} s"),
    }  # fmt: skip
    if size == "organism":
        out = root / "demo.html"
        wall = timed_command(["postlens", "report", "--demo", "--out", str(out)])[0]
        rows["demo report"] = (90 / wall, f"{wall:.0f} s")
    for stage, (ratio, detail) in rows.items():
        print(f"  {stage:16s} {ratio:5.2f}×  {detail}", flush=True)
    return {"size": size, "rows": rows, "load": load(), "worker": w}


def verdicts(results: list[dict]) -> dict[tuple[str, str], bool]:
    """Whether each (stage, size) meets its target, and the largest size also scales."""
    met = {}
    for stage, (_, target) in TARGETS.items():
        ratios = {r["size"]: r["rows"][stage][0] for r in results if stage in r["rows"]}
        for size, ratio in ratios.items():
            met[stage, size] = ratio >= target
        if len(ratios) > 1:
            first, *_, last = ratios
            floor = min(1.0, ratios[first]) * (1 - SCALING_SLACK)
            met[stage, last] = met[stage, last] and ratios[last] >= floor
    return met


def markdown(results: list[dict], quick: bool, seconds: float) -> str:
    """The results as the README's table."""
    met = verdicts(results)
    head = "| stage | " + " | ".join(r["size"] for r in results) + " | target |"
    lines = [head, "|" + " --- |" * (len(results) + 2)]
    for stage, (reading, target) in TARGETS.items():
        cells = []
        for r in results:
            if stage not in r["rows"]:
                cells.append("")
                continue
            ratio, detail = r["rows"][stage]
            mark = "✓" if met[stage, r["size"]] else "✗ **missed**"
            cells.append(f"**{ratio:.2f}×** {mark} ({detail})")
        lines.append(f"| {stage} ({reading}) | " + " | ".join(cells) + f" | ≥ {target}× |")
    loads = "; ".join(f"{r['size']}: {r['load']}" for r in results)
    mode = " --quick" if quick else ""
    lines.append("")
    lines.append(f"`python benchmarks/run_all.py{mode}`, {seconds / 60:.0f} min on "
                 f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')} ({loads}).")  # fmt: skip
    return "\n".join(lines)


def write_readme(path: Path, table: str) -> None:
    text = path.read_text()
    start, end = (text.find(m) for m in MARKERS)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no {MARKERS[0]} ... {MARKERS[1]} section to rewrite")
    path.write_text(text[: start + len(MARKERS[0])] + "\n" + table + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (minutes)")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache/postlens/bench",
                        help="where the built pairs are kept (reused)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--readme", type=Path, help="rewrite this README's table from the run")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_size(size, args, Path(tmp) if size == "organism" else args.root)
                   for size in args.sizes]  # fmt: skip
    table = markdown(results, args.quick, time.perf_counter() - t)
    print("\n" + table)
    met = verdicts(results)
    print("\nevery target met" if all(met.values()) else
          "\nmissed: " + ", ".join(f"{s} at {z}" for (s, z), ok in met.items() if not ok))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.readme:
        write_readme(args.readme, table)


if __name__ == "__main__":
    main()
