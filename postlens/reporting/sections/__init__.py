"""Every report section, in report order, read from the analysis registry (`postlens.registry`).

A section belongs to its analysis: the analysis's declaration names it, so the report, its
JSON and the CLI's ``--sections`` all follow from that one declaration. An analysis that names
no section gets a generic one (`postlens.reporting.sections.generic`), off by default.

Example:
    >>> section_names()[:2]
    ('weights', 'forks')
"""

from __future__ import annotations

from postlens.registry import analyses, resolve
from postlens.reporting.section import Section
from postlens.reporting.sections.generic import generic_section


def sections() -> tuple[Section, ...]:
    """Every section, in report order (the registry's)."""
    return tuple(resolve(a.section) if a.section else generic_section(a) for a in analyses())


def section_names() -> tuple[str, ...]:
    return tuple(s.name for s in sections())


def by_name() -> dict[str, Section]:
    return {s.name: s for s in sections()}
