"""Run the sections of a checkpoint-pair report: timing, provenance, failure isolation.

Computation lives here and in the feature modules; `postlens.viz.report` only renders what this
produces. A section that raises is recorded as failed (with its error) and the others still run.

Example:
    >>> cfg = ReportConfig(base="organism:base", children={"sft": "organism:sft", "rl": "organism:rl"})
    >>> data = run_report(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postlens.specs import resolve_spec

logger = logging.getLogger(__name__)


@dataclass
class ReportConfig:
    """What to report on.

    Attributes:
        base: base model spec.
        children: name → spec of each post-trained child (``{"post": ...}`` or sft/rl).
        prompts: a prompt file (JSONL or text); ``None`` uses the organism's held-out problems.
        sections: the sections to run, in order (default: all).
        backend: ``"transformer_lens"`` or ``"nnsight"``.
        seed: seed of every sampling step.
        n_prompts: prompts used from the file (the first n).
        n_samples: completions sampled per prompt from each child for forks and activations.
        max_new_tokens: length of sampled completions.
        verifier: ``"organism"`` to score completions with the organism's verifier (pass@k,
            trajectories); without one those sections report that they need one.
        passk_samples: samples per problem and model for pass@k (k goes up to this).
    """

    base: str
    children: dict[str, str]
    prompts: Path | None = None
    sections: tuple[str, ...] = ()
    backend: str = "nnsight"
    seed: int = 0
    n_prompts: int = 48
    n_samples: int = 2
    max_new_tokens: int = 100
    verifier: str | None = None
    passk_samples: int = 16

    def __post_init__(self) -> None:
        if not self.children:
            raise ValueError("a report needs at least one post-trained child")
        if min(self.n_prompts, self.n_samples, self.max_new_tokens, self.passk_samples) < 1:
            raise ValueError(
                "n_prompts, n_samples, max_new_tokens and passk_samples must be positive"
            )
        unknown = [s for s in self.sections if s not in SECTION_ORDER]  # noqa: F821 (defined below)
        if unknown:
            raise ValueError(
                f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTION_ORDER)}"
            )


@dataclass
class SectionResult:
    """One section's outcome.

    Attributes:
        name: section key, e.g. ``"forks"``.
        seconds: wall time.
        result: the computed result (feature dataclasses), or ``None`` if it failed.
        error: the error message and traceback when it failed.
    """

    name: str
    seconds: float
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ReportData:
    """Everything a report shows: provenance and the sections' results."""

    config: ReportConfig
    provenance: dict[str, Any]
    sections: list[SectionResult] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [s.name for s in self.sections if not s.ok]


SectionFn = Callable[["ReportContext"], Any]
SECTIONS: dict[str, SectionFn] = {}
SECTION_ORDER = ("weights", "forks", "activations", "passk", "confidence", "personas")
NEEDS_VERIFIER = ("passk", "confidence", "personas")


def section(name: str) -> Callable[[SectionFn], SectionFn]:
    """Register a section's compute function (see `postlens.report_sections`)."""

    def register(fn: SectionFn) -> SectionFn:
        SECTIONS[name] = fn
        return fn

    return register


class ReportContext:
    """Shared state of one report run: the config and the models, loaded once on demand."""

    def __init__(self, config: ReportConfig) -> None:
        self.config = config
        self._pairs: dict[str, Any] | None = None
        self.cache: dict[str, Any] = {}

    @property
    def pairs(self) -> dict[str, Any]:
        """child name → `ModelPair` (all sharing one base), loaded at first use."""
        if self._pairs is None:
            from postlens.pair import ModelPair

            self._pairs = ModelPair.load_family(
                self.config.base,
                self.config.children,
                backend=self.config.backend,  # type: ignore[arg-type]
            )
        return self._pairs


def file_fingerprint(spec: str) -> dict[str, Any]:
    """Spec, location and a SHA-256 of each weight file (hub ids: the id only)."""
    resolved = resolve_spec(spec)
    info: dict[str, Any] = {"spec": spec, "kind": resolved.kind, "location": resolved.location}
    if resolved.path is not None:
        info["files"] = {f.name: _sha256(f) for f in sorted(resolved.path.glob("*.safetensors"))}
    return info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance(config: ReportConfig) -> dict[str, Any]:
    """Where the numbers come from: models with file hashes, versions, settings, date."""
    import torch
    import transformers

    import postlens

    return {
        "base": file_fingerprint(config.base),
        "children": {k: file_fingerprint(v) for k, v in config.children.items()},
        "postlens_version": postlens.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "backend": config.backend,
            "seed": config.seed,
            "n_prompts": config.n_prompts,
            "n_samples": config.n_samples,
            "max_new_tokens": config.max_new_tokens,
            "prompts": str(config.prompts) if config.prompts else None,
            "verifier": config.verifier,
        },
    }


def default_sections(config: ReportConfig) -> tuple[str, ...]:
    """Every section that can run: those built on the organism's task only when it is given."""
    return tuple(s for s in SECTION_ORDER if s not in NEEDS_VERIFIER or config.verifier)


def run_report(
    config: ReportConfig, on_section: Callable[[str, SectionResult | None], None] | None = None
) -> ReportData:
    """Compute every selected section, isolating failures.

    Args:
        config: what to report on.
        on_section: called with (name, None) when a section starts and (name, result) when it
            ends, for progress display.
    """
    import postlens.report_sections  # noqa: F401  (registers the sections)

    data = ReportData(config, provenance(config))
    ctx = ReportContext(config)
    for name in config.sections or default_sections(config):
        if on_section:
            on_section(name, None)
        data.sections.append(_run_one(name, ctx))
        if on_section:
            on_section(name, data.sections[-1])
    return data


def _run_one(name: str, ctx: ReportContext) -> SectionResult:
    start = time.perf_counter()
    try:
        result = SECTIONS[name](ctx)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failed section must not take the report down
        logger.debug("section %s failed", name, exc_info=True)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
        return SectionResult(name, time.perf_counter() - start, None, f"{err}\n{tb}")
    return SectionResult(name, time.perf_counter() - start, result)
