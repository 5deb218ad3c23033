"""Case study 09's larger run: fork substitution, fork-targeted training and pass@k error bars.

Usage: ``python case_studies/scripts/run_09.py [OUT_JSON]`` (default
``case_studies/results/09_fork_substitution_and_training.json``; about 20 minutes on one CPU
thread). ``--quick`` runs every part at toy sizes (a minute) to check the pipeline.

Only postlens's public API: ``fam.substitute``, ``fam.fork_train`` and ``fam.passk``. Every
part is repeated over seeds, each seed a full replicate: ``SubstitutionConfig.sample.seed`` (the
sampling draws) with its own ``control_seed``; ``ForkTrainConfig.sample.seed`` (the child's training
samples, the evaluation samples of every model) with ``seeds=(seed,)`` (the control's draw).
The JSON holds each result's own ``to_json`` (read back with ``pl.Result.from_json``), the
sizes and the wall time of each part; notebook 09 loads and displays it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

import postlens as pl

torch.set_num_threads(1)
INF = math.inf
OUT = Path(__file__).resolve().parents[1] / "results" / "09_fork_substitution_and_training.json"

FULL = {
    "taus": (-INF, 0.1, 0.25, 0.5, 0.6, 0.75, 1.0, INF),
    "reverse_taus": (-INF, 0.1, 0.5, INF),
    "substitution": {"limit": 64, "n": 4, "max_new_tokens": 100},
    "substitution_seeds": (0, 1, 2),
    "fork_train": {
        "steps": 20,
        "train": 32,
        "n": 2,
        "limit": 64,
        "n_eval": 4,
        "max_new_tokens": 100,
    },  # fmt: skip
    "lrs": (1e-5, 3e-5),
    "fork_train_seeds": (0, 1, 2, 3, 4),
    "passk": {"n": 64, "limit": 128, "max_new_tokens": 100},
}
QUICK = {
    **FULL,
    "taus": (-INF, 0.5, INF),
    "reverse_taus": (-INF, INF),
    "substitution": {"limit": 2, "n": 2, "max_new_tokens": 100},
    "substitution_seeds": (0,),
    "fork_train": {
        "steps": 2,
        "train": 2,
        "n": 1,
        "limit": 2,
        "n_eval": 2,
        "max_new_tokens": 100,
    },  # fmt: skip
    "lrs": (1e-5,),
    "fork_train_seeds": (0,),
    "passk": {"n": 4, "limit": 4, "max_new_tokens": 100},
}


def _taus(taus: tuple[float, ...]) -> list[float | str]:
    return [t if math.isfinite(t) else ("inf" if t > 0 else "-inf") for t in taus]


def _config(cls: type, params: dict, seed: int, **extra: object) -> object:
    """`cls` with `params`, those that are sampling settings going to its `SampleConfig`."""
    names = {f.name for f in dataclasses.fields(pl.SampleConfig)}
    sample = {k: v for k, v in params.items() if k in names}
    rest = {k: v for k, v in params.items() if k not in names}
    default = cls().sample
    return cls(**rest, **extra, sample=dataclasses.replace(default, seed=seed, **sample))


def run(sizes: dict) -> dict:
    fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    substitution, reverse = {}, {}
    for seed in sizes["substitution_seeds"]:
        cfg = _config(pl.SubstitutionConfig, sizes["substitution"], seed, taus=sizes["taus"],
                      directions=("base→post",), control_seed=100 + seed)  # fmt: skip
        substitution[str(seed)] = fam.substitute(config=cfg).to_json()
        print(f"substitution seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    first = sizes["substitution_seeds"][0]
    cfg = _config(pl.SubstitutionConfig, sizes["substitution"], first, taus=sizes["reverse_taus"],
                  directions=("post→base",), control_seed=100 + first)  # fmt: skip
    reverse[str(first)] = fam.substitute(config=cfg).to_json()
    seconds["substitution"] = time.perf_counter() - start

    start = time.perf_counter()
    fork_train: dict[str, dict] = {}
    for lr in sizes["lrs"]:
        for seed in sizes["fork_train_seeds"]:
            cfg = _config(pl.ForkTrainConfig, sizes["fork_train"], seed, lr=lr, seeds=(seed,))
            fork_train.setdefault(f"{lr:g}", {})[str(seed)] = fam.fork_train(config=cfg).to_json()
            print(f"fork_train lr {lr:g} seed {seed}: {time.perf_counter() - start:.0f} s",
                  flush=True)  # fmt: skip
    seconds["fork_train"] = time.perf_counter() - start

    start = time.perf_counter()
    passk = fam.passk(
        config=_config(pl.PassKConfig, sizes["passk"], 0),
        progress=False,
    ).to_json()
    seconds["passk"] = time.perf_counter() - start
    print(f"passk: {seconds['passk']:.0f} s", flush=True)
    shown = {**sizes, "taus": _taus(sizes["taus"]), "reverse_taus": _taus(sizes["reverse_taus"])}
    return {
        "command": "python case_studies/scripts/run_09.py",
        "torch_threads": torch.get_num_threads(),
        "sizes": shown,
        "substitution": substitution,
        "reverse": reverse,
        "fork_train": fork_train,
        "passk": passk,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--quick"]
    out = Path(args[0]) if args else OUT
    results = run(QUICK if "--quick" in sys.argv else FULL)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
