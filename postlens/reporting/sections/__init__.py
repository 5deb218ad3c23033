"""Every report section, in report order, read from the analysis registry (`postlens.registry`).

A section belongs to its analysis: the analysis's declaration names it, so the report, its
JSON and the CLI's ``--sections`` all follow from that one declaration.

Example:
    >>> SECTION_NAMES[:2]
    ('weights', 'forks')
"""

from __future__ import annotations

from postlens.registry import analyses, resolve
from postlens.reporting.section import Section

SECTIONS: tuple[Section, ...] = tuple(resolve(a.section) for a in analyses() if a.section)
SECTION_NAMES = tuple(s.name for s in SECTIONS)
BY_NAME = {s.name: s for s in SECTIONS}
