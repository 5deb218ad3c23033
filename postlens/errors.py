"""Exceptions raised by postlens.

Every error that reaches a user names the file, tensor, line or token at fault. The CLI prints
`PostlensError` messages on one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class PostlensError(Exception):
    """Base class of every error postlens raises on bad input."""


class SpecError(PostlensError, ValueError):
    """A model spec (folder, hub id or ``organism:<name>``) cannot be resolved."""


class CheckpointError(PostlensError):
    """A checkpoint on disk is missing, truncated or corrupted."""


class IncompatibleModelsError(PostlensError):
    """Two models cannot be compared (different tokenizer, depth, width or family)."""


class InputFileError(PostlensError, ValueError):
    """A user-supplied input file (prompts, JSONL, ...) is malformed."""


class ConfigError(PostlensError, ValueError):
    """An option value is out of range or of the wrong kind (raised before any model loads)."""


class NotSupportedError(PostlensError, NotImplementedError):
    """A combination of inputs postlens does not handle yet; says what would work instead."""
