"""Every report section, in report order: the one list the report, its JSON and the CLI read.

Example:
    >>> SECTION_NAMES[:2]
    ('weights', 'forks')
"""

from __future__ import annotations

from postlens.reporting.section import Section
from postlens.reporting.sections import (
    activations,
    adl,
    confidence,
    crosscoder,
    fork_train,
    forks,
    passk,
    personas,
    steer,
    substitution,
    weights,
)

SECTIONS: tuple[Section, ...] = (
    weights.SECTION,
    forks.SECTION,
    activations.SECTION,
    passk.SECTION,
    confidence.SECTION,
    personas.SECTION,
    crosscoder.SECTION,
    steer.STEER,
    steer.EXTRAPOLATE,
    substitution.SECTION,
    adl.SECTION,
    fork_train.SECTION,
)
SECTION_NAMES = tuple(s.name for s in SECTIONS)
BY_NAME = {s.name: s for s in SECTIONS}
