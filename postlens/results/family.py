"""Results of a whole family: one result per child, with the common protocol; reading results back.

`ByChild` is what a family method returns (``fam.forks(...)``, ``fam.activations(...)``): a
mapping child name → that child's result, which itself follows the protocol of
`postlens.results.protocol.Result`. `load_result` reads any result (or a report's results) back from
JSON, so views can be re-rendered without recomputing.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> cfg = pl.ActivationConfig(sample=pl.SampleConfig(n=1, max_new_tokens=16))
    >>> acts = fam.activations(["Q: 1+2=?"], cfg)
    >>> sorted(acts), acts.summary()["rl"].n_layers
    (['rl', 'sft'], 4)
    >>> pl.Result.from_json(acts.to_json())["sft"].summary() == acts["sft"].summary()
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postlens.errors import InputFileError
from postlens.registry import register_result_kinds
from postlens.results.protocol import Result


@dataclass(frozen=True)
class ChildSummaries:
    """The summary of each child's result, by child name (``summaries["rl"].agreement``)."""

    children: dict[str, Any]

    def __getitem__(self, child: str) -> Any:
        return self.children[child]


@dataclass
class ByChild(Result[ChildSummaries], Mapping[str, Result], kind="by_child"):
    """One result per child of a family, all of one analysis.

    Attributes:
        analysis: the analysis's kind (``"forks"``, ``"activations"``, ...).
        results: child name → result.
    """

    analysis: str
    results: Mapping[str, Result]

    def __getitem__(self, child: str) -> Result:
        if child not in self.results:
            raise KeyError(f"no child {child!r}; this family has {', '.join(self.results)}")
        return self.results[child]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def summary(self) -> ChildSummaries:
        return ChildSummaries({k: r.summary() for k, r in self.results.items()})

    def to_frame(self) -> Any:
        """Every child's rows, with a ``child`` column first."""
        import pandas as pd

        frames = [r.to_frame().assign(child=k) for k, r in self.results.items()]
        frame = pd.concat(frames, ignore_index=True)
        return frame[["child", *(c for c in frame.columns if c != "child")]]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "analysis": self.analysis,
            "children": {k: r.to_json() for k, r in self.results.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ByChild:
        children = {k: Result.from_json(v) for k, v in data["children"].items()}
        return cls(data["analysis"], children)

    def plot(self) -> Any:
        """The analysis's figure with one trace per child."""
        first = next(iter(self.results.values()))
        return type(first).plot_children(self.results)

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc

        parts = (f"<h4>{esc(k)}</h4>{r._repr_html_()}" for k, r in self.results.items())
        return f"<div>{''.join(parts)}</div>"


def load_result(source: str | Path | Mapping[str, Any]) -> Result:
    """A result read back from its JSON (a dict, or a file written by ``--json``).

    Raises:
        InputFileError: the file is missing, is not JSON, or holds no postlens result.
    """
    data = read_json(source) if isinstance(source, str | Path) else source
    register_result_kinds()
    try:
        return Result.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        where = source if isinstance(source, str | Path) else "the data given"
        raise InputFileError(f"{where}: not a postlens result ({err})") from None


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a missing or non-JSON file is an `InputFileError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"{path}: not a JSON file ({err})") from None
