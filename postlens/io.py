"""Output files: checked before any compute, written atomically, never left half-written.

A reader never sees a half-written file, even after Ctrl-C or a full disk: the text goes to a
temporary file beside the target, which is renamed into place only once complete (and deleted on
any failure). The file gets the permissions a plain ``open(path, "w")`` would give (the user's
umask, 0644 by default), or keeps those of the file it replaces.

Example:
    >>> check_writable("out/report.json").name
    'report.json'
    >>> write_json_atomic("out/report.json", {"agreement": 0.99}).read_text()
    '{\\n  "agreement": 0.99\\n}\\n'
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postlens.errors import ConfigError


def check_writable(path: str | Path) -> Path:
    """Check that `path` can be written, without creating anything (call it before compute).

    The closest existing ancestor must be a writable folder: missing parents are fine, since
    the atomic writers create them.

    Args:
        path: the output file a command will write.

    Returns:
        `path` as a `Path`.

    Raises:
        ConfigError: naming `path`, when it is a folder or another non-regular file (a device
            node, a pipe), when a parent is a file (so it cannot be made), or when the folder it
            would go in (or the file itself) is not writable.

    Example:
        >>> check_writable("/tmp/postlens-report.html")
        PosixPath('/tmp/postlens-report.html')
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not path.is_file():  # replacing a device node or a pipe breaks things
        raise ConfigError(
            f"{path}: not a regular file (a device, pipe or socket); give a file path for the output"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{path}: the file exists and is not writable")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{path}: cannot create its folder: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot write there: {parent} is not writable")
    return path


def check_distinct(outputs: Sequence[Path], inputs: Sequence[Path] = ()) -> None:
    """Refuse two outputs that are the same file, and an output that is one of the inputs.

    One would silently replace the other (or the prompts a run reads); compared after symlinks
    and ``..`` are resolved.

    Raises:
        ConfigError: naming the file.

    Example:
        >>> check_distinct([Path("r.html"), Path("./r.html")])
        Traceback (most recent call last):
        ...
        postlens.errors.ConfigError: r.html: given as two outputs; give each output its own file
    """
    seen: dict[Path, Path] = {}
    for path in outputs:
        key = path.resolve()
        if key in seen:
            raise ConfigError(f"{seen[key]}: given as two outputs; give each output its own file")
        seen[key] = path
    for path in inputs:
        if path.resolve() in seen:
            raise ConfigError(
                f"{path}: is an input of this run and also an output, which would overwrite it; "
                "choose another output path"
            )


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then rename it into place.

    Raises:
        OSError: naming `path` (not the temporary file, which is gone) when the write fails.

    Example:
        >>> write_text_atomic("out.json", "{}").read_text()
        '{}'
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; a plain open would not
            f.write(text)
        os.replace(tmp, path)
    except OSError as err:
        _discard(tmp)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        _discard(tmp)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON, atomically.

    Example:
        >>> import json
        >>> json.loads(write_json_atomic("out.json", {"n": 3}).read_text())
        {'n': 3}
    """
    # Serialise first: a TypeError here must not leave a temporary file behind either.
    return write_text_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _mode_for(path: Path) -> int:
    """Permission bits of the file `path` replaces, else what the umask gives a new file."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # Linux reports it without changing it; elsewhere set-and-restore (briefly process-wide).
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
