"""What a report computes: which sections, on which prompts, with how many samples.

Example:
    >>> ReportConfig(sections=("forks",), n_prompts=8).sample.n
    2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from postlens.errors import ConfigError
from postlens.sampling.generation import SampleConfig


@dataclass(frozen=True)
class ReportConfig:
    """Settings of a report run (the models are the family's).

    Attributes:
        sections: the sections to run, in order (default: every default section that can run
            on these inputs; see `postlens.reporting.sections.sections`).
        prompts: a prompt file (JSONL or text); ``None`` uses the organism's held-out problems
            when the base is the organism.
        n_prompts: prompts (or problems) used, the first ones.
        sample: how completions are sampled for forks and activations (per child).
        passk_samples: samples per problem and model for pass@k (k goes up to this).
        verifier: how the prompt file's ``answer`` fields are checked for pass@k.
        seed: seed of every sampling step not covered by `sample`.
        personas: a persona file for the personas section (JSONL: ``persona``, ``prompt``,
            optional ``completion``); its untagged prompts are `prompts` (default: the
            family's own, when it has them). ``None``: the family's own persona sets.
    """

    sections: tuple[str, ...] = ()
    prompts: Path | None = None
    n_prompts: int = 32
    sample: SampleConfig = field(default_factory=SampleConfig)
    passk_samples: int = 16
    verifier: str = "last-number"
    seed: int = 0
    personas: Path | None = None

    def __post_init__(self) -> None:
        from postlens.reporting.sections import section_names

        if self.personas is not None:  # checked now, before any model loads
            from postlens.diffs.personas.analysis import read_persona_file

            read_persona_file(self.personas, 1)

        if self.n_prompts < 1 or self.passk_samples < 1:
            raise ConfigError(
                f"n_prompts and passk_samples must be positive (got {self.n_prompts}, "
                f"{self.passk_samples})"
            )
        names = section_names()
        unknown = [s for s in self.sections if s not in names]
        if unknown:
            raise ConfigError(
                f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(names)}"
            )
