"""Run a report's sections on a family: timing, provenance, failure isolation, interruption.

A section that raises is recorded as failed (with its error) and the others still run; Ctrl-C
stops the run and keeps the sections already finished (`Report.interrupted`).

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> rep = fam.report(pl.ReportConfig(sections=("weights",)))
    >>> [s.name for s in rep.sections], rep.failed
    (['weights'], [])
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import time
import traceback
from collections.abc import Callable
from typing import Any

from postlens.reporting.config import ReportConfig
from postlens.reporting.document import Report, SectionResult
from postlens.reporting.section import ReportContext
from postlens.reporting.sections import by_name, sections

logger = logging.getLogger(__name__)
OnSection = Callable[[str, SectionResult | None], None]


def fingerprint(spec: Any) -> dict[str, Any]:
    """Spec, location and a SHA-256 of each weight file, safetensors or GGUF (hub ids and
    models in memory: none)."""
    from postlens.models.hashes import HASHED_KINDS, weight_hashes

    info: dict[str, Any] = {"spec": spec.spec, "kind": spec.kind, "location": spec.location}
    if spec.kind in HASHED_KINDS:
        info["files"] = weight_hashes(spec)
    return info


def tokenizers(family: Any) -> dict[str, Any]:
    """Per child: how its tokenizer differs from the base's, and whose chat template was used.

    Example:
        >>> import postlens as pl
        >>> info = tokenizers(pl.load("organism:base", rl="organism:rl"))["rl"]
        >>> info["special"], info["chat_template_used"], info["n_shared"]
        ([], 'none', 104)
    """
    out = {}
    for child, pair in family.pairs.items():
        info = pair.tokens.to_dict()
        info["chat_template_used"] = pair.chat.which
        info["differences"] = pair.tokens.lines()
        out[child] = info
    return out


def provenance(family: Any, config: ReportConfig) -> dict[str, Any]:
    """Where the numbers come from: models with file hashes, tokenizers, versions, settings."""
    import torch
    import transformers

    import postlens

    return {
        "base": fingerprint(family.first.base_spec),
        "children": {k: fingerprint(p.post_spec) for k, p in family.pairs.items()},
        "tokenizers": tokenizers(family),
        "postlens_version": postlens.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "backend": family.base.name,
            "dtype": str(next(family.base.hf_model.parameters()).dtype).removeprefix("torch."),
            "seed": config.seed,
            "n_prompts": config.n_prompts,
            "n_samples": config.sample.n,
            "max_new_tokens": config.sample.max_new_tokens,
            "prompts": str(config.prompts) if config.prompts else None,
            "passk_samples": config.passk_samples,
        },
    }


def chosen_sections(ctx: ReportContext) -> list[str]:
    """The sections asked for, or every default section that can run on these inputs."""
    if ctx.config.sections:
        return list(ctx.config.sections)
    return [s.name for s in sections() if s.default and s.unavailable(ctx) is None]


def run_report(family: Any, config: ReportConfig, on_section: OnSection | None = None) -> Report:
    """Compute the chosen sections on `family`, isolating failures.

    Args:
        family: the loaded `Family`.
        config: which sections, prompts and samples.
        on_section: called with (name, None) when a section starts and (name, result) when it
            ends, for progress display.
    """
    if config.prompts is not None:  # the prompt file serves every section that reads problems
        from postlens.data.defaults import Inputs

        family = family.with_inputs(Inputs(problems=config.prompts, verifier=config.verifier))
    ctx = ReportContext(family, config)
    title_models = {"base": family.base_spec, **family.specs}
    report = Report(title_models, provenance(family, config))
    if not config.sections:  # say which default sections these inputs cannot feed, and why
        report.skipped = {
            s.name: reason
            for s in sections()
            if s.default and (reason := s.unavailable(ctx)) is not None
        }
    for name in chosen_sections(ctx):
        if on_section:
            on_section(name, None)
        try:
            report.sections.append(_run_one(name, ctx))
        except KeyboardInterrupt:
            report.interrupted = True
            logger.warning("interrupted during section %s; keeping the finished sections", name)
            break
        if on_section:
            on_section(name, report.sections[-1])
    return report


def _run_one(name: str, ctx: ReportContext) -> SectionResult:
    section, start = by_name()[name], time.perf_counter()
    reason = section.unavailable(ctx)
    if reason is not None:
        return SectionResult(name, 0.0, None, f"cannot run on these inputs: {reason}")
    try:
        result = section.compute(ctx)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failed section must not take the report down
        logger.debug("section %s failed", name, exc_info=True)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
        return SectionResult(name, time.perf_counter() - start, None, f"{err}\n{tb}")
    return SectionResult(name, time.perf_counter() - start, result)
