"""Command-line options built from a config dataclass: each default and each help text lives once.

`with_config(ForkConfig)` adds one option per field of the config (nested dataclasses such as
``sample: SampleConfig`` flattened into their own fields) to a typer command, with the field's
default and the help its docstring's ``Attributes:`` entry gives, and hands the command one
validated config instead of the separate values. This is the same idea as tuned-lens's
simple_parsing-built CLI; it is written here because typer (which the rest of the CLI uses) has
no dataclass support, and simple_parsing would bring a second parser.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Demo:
    ...     '''Demo settings.
    ...
    ...     Attributes:
    ...         alpha: how far to go.
    ...         names: which ones (repeat the option).
    ...     '''
    ...     alpha: float = 0.5
    ...     names: tuple[str, ...] = ("a",)
    >>> [(o.name, o.help) for o in config_fields(Demo)]
    [('alpha', 'how far to go.'), ('names', 'which ones (repeat the option).')]
    >>> build_config(Demo, {"alpha": 2.0, "names": ["x", "y"]})
    Demo(alpha=2.0, names=('x', 'y'))
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

_ATTRIBUTE = re.compile(r"^(\s*)([A-Za-z_][\w, ]*):\s*(.*)$")


@dataclass(frozen=True)
class ConfigField:
    """One command-line option taken from a config field.

    Attributes:
        name: the parameter name (``js_threshold``; nested: ``sample_batch_size`` on a clash).
        path: the field's path in the config (``("sample", "n")``).
        annotation: the option's type, as typer takes it.
        default: the field's default.
        help: the field's docstring entry.
    """

    name: str
    path: tuple[str, ...]
    annotation: Any
    default: Any
    help: str


def field_docs(cls: type) -> dict[str, str]:
    """Field name → its entry in the class docstring's ``Attributes:`` section.

    Entries that name several fields (``max_new_tokens, temperature, seed: sampling.``) give
    each of them the same text; continuation lines are joined.
    """
    docs: dict[str, str] = {}
    lines = inspect.getdoc(cls) or ""
    inside, indent, current = False, None, []
    for line in lines.splitlines():
        if line.strip() == "Attributes:":
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not line.strip() or (not line.startswith(" ") and line.strip().endswith(":")):
            if line.strip():
                inside = False
            continue
        match = _ATTRIBUTE.match(line)
        if match and (indent is None or len(match[1]) == indent):
            indent = len(match[1])
            current = [n.strip() for n in match[2].split(",")]
            for name in current:
                docs[name] = match[3].strip()
        elif current:
            for name in current:
                docs[name] = f"{docs[name]} {line.strip()}".strip()
    return docs


def _plain(annotation: Any) -> Any:
    """The option type typer takes for a field's annotation, or ``None`` to leave it out."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            return None
        plain = _plain(inner[0])
        return None if plain is None else plain | None
    if origin is typing.Literal:
        return type(args[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return list[args[0]]  # type: ignore[valid-type]
        return annotation
    return annotation if annotation in (int, float, str, bool, Path) else None


def config_fields(
    cls: type, exclude: tuple[str, ...] = (), prefix: tuple[str, ...] = (), defaults: Any = None
) -> list[ConfigField]:
    """The options of config class `cls`, nested dataclasses flattened (see the module doc).

    Fields whose type the command line cannot hold (a tensor, a callable) are left out, as are
    `exclude` (names, or dotted paths such as ``"sample.n"``). A nested config's defaults are
    those of the outer config's default instance (`defaults`), not its class's.
    """
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    defaults = cls() if defaults is None else defaults
    out: list[ConfigField] = []
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        if f.name in exclude or ".".join(path) in exclude or not f.init:
            continue
        kind, default = hints[f.name], getattr(defaults, f.name)
        if dataclasses.is_dataclass(kind):
            out += config_fields(kind, exclude, path, default)  # type: ignore[arg-type]
            continue
        plain = _plain(kind)
        if plain is not None:
            out.append(ConfigField(f.name, path, plain, default, docs.get(f.name, "")))
    return _unclash(out)


def _unclash(fields: list[ConfigField]) -> list[ConfigField]:
    """A nested field whose name another field also has gets its parent's prefix.

    Example:
        >>> from postlens.probes.confidence.result import ConfidenceConfig
        >>> names = [f.name for f in config_fields(ConfidenceConfig)]
        >>> "sample_max_new_tokens" in names and "trajectory_max_new_tokens" in names
        True
    """
    seen: dict[str, int] = {}
    for f in fields:
        seen[f.name] = seen.get(f.name, 0) + 1
    return [
        dataclasses.replace(f, name="_".join(f.path)) if len(f.path) > 1 and seen[f.name] > 1 else f
        for f in fields
    ]


def build_config(
    cls: type, values: Mapping[str, Any], fields: list[ConfigField] | None = None
) -> Any:
    """An instance of `cls` from option values by field name (validated by its constructor)."""
    fields = config_fields(cls) if fields is None else fields
    tree: dict[str, Any] = {}
    for f in fields:
        if f.name not in values:
            continue
        value = values[f.name]
        _check_number(f.name, value, allow_inf=_has_inf(f.default))
        node = tree
        for part in f.path[:-1]:
            node = node.setdefault(part, {})
        node[f.path[-1]] = tuple(value) if isinstance(value, list) else value
    return _instantiate(cls, tree)


#: Integers past this do not fit the 64-bit fields torch and numpy take (seeds, sizes).
INT_LIMIT = 2**63


def _has_inf(default: Any) -> bool:
    """Whether a field's default holds an infinity (then ±inf mean something there, as the
    substitution thresholds' ``-inf`` and ``inf`` do)."""
    values = default if isinstance(default, list | tuple) else [default]
    return any(isinstance(x, float) and math.isinf(x) for x in values)


def _check_number(name: str, value: Any, allow_inf: bool = False) -> None:
    """Refuse NaN, infinite floats (unless `allow_inf`) and integers past 64 bits, naming the
    option: no config field means anything by them, and a comparison with NaN is always false.

    Example:
        >>> _check_number("atol", float("nan"))
        Traceback (most recent call last):
        ...
        postlens.errors.ConfigError: --atol: nan is not a finite number
    """
    from postlens.errors import ConfigError

    flag = f"--{name.replace('_', '-')}"
    for x in value if isinstance(value, list | tuple) else [value]:
        if isinstance(x, float) and (math.isnan(x) or (math.isinf(x) and not allow_inf)):
            raise ConfigError(f"{flag}: {x} is not a finite number")
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= INT_LIMIT:
            raise ConfigError(f"{flag}: {x} is out of range (at most 2**63 - 1)")


def _instantiate(cls: type, tree: Mapping[str, Any]) -> Any:
    hints, values = typing.get_type_hints(cls), {}
    for key, value in tree.items():
        values[key] = _instantiate(hints[key], value) if isinstance(value, dict) else value
    return cls(**values)


def with_config(
    cls: type, exclude: tuple[str, ...] = (), names: Mapping[str, str] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a typer command one option per field of `cls`, and the built config as ``config``.

    Args:
        cls: the config dataclass.
        exclude: fields the command sets itself (names or dotted paths).
        names: a second option name for a field, where the command line has a shorter one
            (``{"alphas": "alpha"}`` accepts ``--alpha`` beside ``--alphas``).
    """
    renamed = dict(names or {})

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        fields = config_fields(cls, exclude)
        hints = typing.get_type_hints(command)  # resolved in the command's own module
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(command).parameters.values()
            if p.name != "config"
        ]
        taken = {p.name for p in own}
        generated = [_parameter(f, renamed.get(f.name)) for f in fields if f.name not in taken]
        keys = {p.name for p in generated}

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in keys}
            return command(config=build_config(cls, values, fields), **kwargs)

        # Options keep the command's own order; the config's fields come before the
        # keyword-only tail (backend, dtype, device, --json, --verbose) when it has one.
        split = next((i for i, p in enumerate(own) if p.name == "backend"), len(own))
        params = [*own[:split], *generated, *own[split:]]
        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        )
        run.__annotations__ = {p.name: p.annotation for p in params}
        run.__dict__["config_fields"] = fields  # what the options came from (tests read it)
        return run

    return decorate


def _parameter(f: ConfigField, flag: str | None) -> inspect.Parameter:
    default = (
        list(f.default)
        if isinstance(f.default, tuple) and typing.get_origin(f.annotation) is list
        else f.default
    )
    decls = [f"--{f.name.replace('_', '-')}"]
    if f.annotation in (bool, bool | None):
        decls = [f"{decls[0]}/--no-{decls[0][2:]}"]
    elif flag is not None:  # the command's own short name, beside the field's
        decls.append(f"--{flag}")
    option = typer.Option(default, *decls, help=_help(f.help))
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=f.annotation
    )


def _help(doc: str) -> str | None:
    """A docstring entry as option help: capitalised, without reST quoting.

    Example:
        >>> _help("``all`` positions or only `generated` ones.")
        'All positions or only generated ones.'
    """
    text = doc.replace("``", "").replace("`", "")
    return text[:1].upper() + text[1:] if text else None
