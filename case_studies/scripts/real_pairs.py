"""Every postlens command, and the report, on a real-LM checkpoint pair, timed.

Each command runs in its own process under ``/usr/bin/time -v`` (wall time and peak memory),
with inputs in the format the pair's base reads: the built organism's pairs (``organism:smol-*``)
use their own default inputs; Gemma 3 270M (a pretrained base, no chat template) reads the same
additions written as plain text (``Q: What is 7 + 15?\\nA:``), and its persona file is the SmolLM2
base's style-tagged replies re-asked in that format. ``steer`` steers along the ADL difference
δ that ``adl`` found (saved as a vector). Figures go to ``case_studies/results/real_pairs.json``
(one entry per pair and command: exit code, seconds, peak MiB, the command line), each pair's
report, and the results of ``passk``, ``substitute`` and ``crosscoder`` (which the report does
not run), to ``case_studies/results/reports/``.

    python case_studies/scripts/real_pairs.py gemma-lora            # Gemma 3 270M vs its LoRA
    python case_studies/scripts/real_pairs.py smol-sft --only report
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "real_pairs.json"
REPORTS = ROOT / "results" / "reports"
SMALL = ["--limit", "8"]


def gemma_pair() -> tuple[str, str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from gemma_lora_child import OUT, gemma_gguf

    return str(gemma_gguf()), str(OUT)


PAIRS = {
    "smol-sft": lambda: ("organism:smol-base", "organism:smol-sft"),
    "smol-rl": lambda: ("organism:smol-base", "organism:smol-rl"),
    "smol-lora": lambda: ("organism:smol-base", "organism:smol-lora"),
    "gemma-lora": gemma_pair,
}


def plain_inputs(folder: Path) -> dict[str, Path]:
    """Problems, persona file and untagged prompts in plain text, for a base without a template."""
    from postlens.lm_organism.recipe import Recipe
    from postlens.lm_organism.task import split
    from postlens.models.specs import resolve_spec

    def plain(question: str) -> str:
        return f"Q: {question}\nA:"

    _, held = split(Recipe().held_out, Recipe().seed)
    problems = folder / "problems.jsonl"
    problems.write_text("".join(json.dumps({"prompt": plain(p.question), "answer": p.answer}) + "\n"
                                for p in held))  # fmt: skip
    smol = Path(resolve_spec("organism:smol-base").location)
    tagged = [json.loads(line) for line in (smol / "personas.jsonl").read_text().splitlines()]
    personas = folder / "personas.jsonl"
    personas.write_text("".join(
        json.dumps({**r, "prompt": plain(r["prompt"]), "completion": " " + r["completion"]}) + "\n"
        for r in tagged
    ))  # fmt: skip
    prompts = folder / "prompts.txt"
    prompts.write_text("".join(plain(p.question).replace("\n", "\\n") + "\n" for p in held[:16]))
    return {"problems": problems, "personas": personas, "prompts": prompts}


def commands(
    base: str, post: str, inputs: dict[str, Path] | None, out: Path
) -> dict[str, list[str]]:
    """Command name → its arguments (after ``postlens``), small enough for 2 CPU cores."""
    pair = [base, post]
    problems = ["--prompts", str(inputs["problems"])] if inputs else []
    personas = ["--personas", str(inputs["personas"])] if inputs else []
    untagged = ["--prompts", str(inputs["prompts"])] if inputs else []
    report = REPORTS / f"{out.name}.html"

    def saved(command: str) -> Path:  # the results the case studies read, beside the report
        return REPORTS / f"{out.name}.{command}.json"

    return {
        "info": ["info", *pair],
        "weights": ["weights", *pair],
        "forks": ["forks", *pair, *problems, *SMALL, "--max-new-tokens", "48"],
        "activations": ["activations", *pair, *problems, *SMALL, "--max-new-tokens", "48"],
        "personas": ["personas", *pair, *personas, *untagged],
        "adl": ["adl", *pair, *problems, "--limit", "4", "--n-prompts", "2", "--json", str(out / "adl.json")],
        "steer": ["steer", base, post, "--vector", str(out / "delta.npy"), "--layer", "{adl_layer}",
                  *problems, "--limit", "4", "--n", "2", "--max-new-tokens", "48",
                  "--alpha", "0", "--alpha", "32"],
        "passk": ["passk", *pair, *problems, "--limit", "16", "--n", "8", "--max-new-tokens", "48",
                  "--json", str(saved("passk"))],
        "substitute": ["substitute", *pair, *problems, *SMALL, "--n", "2", "--max-new-tokens", "48",
                       "--json", str(saved("substitute"))],
        "extrapolate": ["extrapolate", *pair, *problems, *SMALL, "--n", "2", "--max-new-tokens", "48"],
        "crosscoder": ["crosscoder", *pair, *problems, "--tokens", "20000", "--hook", "{mid_hook}",
                       "--json", str(saved("crosscoder"))],
        "fork-train": ["fork-train", *pair, *problems, *SMALL, "--steps", "10", "--n", "2",
                       "--max-new-tokens", "48", "--n-eval", "8"],
        "report": ["report", *pair, *problems, *personas, "--n-prompts", "8", "--passk-samples", "8",
                   "--max-new-tokens", "48", "--out", str(report), "--json", str(report.with_suffix(".json"))],
    }  # fmt: skip


def timed(args: list[str]) -> dict[str, object]:
    """Run ``postlens ARGS`` under /usr/bin/time -v: exit code, seconds, peak MiB, last lines."""
    start = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-v", "postlens", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    tail = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.strip() and "\t" not in ln]
    return {"exit": run.returncode, "seconds": round(seconds, 1),
            "peak_mib": round(int(peak.group(1)) / 1024) if peak else None,
            "command": "postlens " + " ".join(args), "last_lines": tail[-3:]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("--only", action="append", help="Run only these commands (repeatable).")
    args = parser.parse_args()
    base, post = PAIRS[args.pair]()
    REPORTS.mkdir(parents=True, exist_ok=True)
    figures = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / args.pair
        out.mkdir()
        inputs = plain_inputs(out) if args.pair.startswith("gemma") else None
        layers = _n_layers(base)
        fill = {"adl_layer": str(layers // 2), "mid_hook": f"blocks.{layers // 2}.hook_resid_post"}
        for name, argv in commands(base, post, inputs, out).items():
            if args.only and name not in args.only:
                continue
            if name == "steer":
                _save_delta(out)
            argv = [a.format(**fill) if "{" in a else a for a in argv]
            result = timed(argv)
            print(f"{name}: exit {result['exit']} in {result['seconds']} s, "
                  f"{result['peak_mib']} MiB", flush=True)  # fmt: skip
            figures.setdefault(args.pair, {})[name] = result
            RESULTS.write_text(json.dumps(figures, indent=2) + "\n")  # after each: nothing lost


def _n_layers(spec: str) -> int:
    from postlens.models.specs import resolve_spec

    resolved = resolve_spec(spec)
    if resolved.kind == "gguf":
        from gguf import GGUFReader

        from postlens.models.gguf import gguf_info

        arch = gguf_info(resolved.gguf_path).architecture
        field = GGUFReader(resolved.gguf_path).fields[f"{arch}.block_count"]
        return int(field.contents())
    config = json.loads((Path(resolved.location) / "config.json").read_text())
    return int(config["num_hidden_layers"])


def _save_delta(out: Path) -> None:
    """The ADL difference δ at its layer, as the vector ``steer`` steers along."""
    import numpy as np

    data = json.loads((out / "adl.json").read_text())
    delta = data["children"]["post"]["delta"] if "children" in data else data["delta"]
    np.save(out / "delta.npy", np.asarray(delta, dtype=np.float32))


if __name__ == "__main__":
    main()
