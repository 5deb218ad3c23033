"""GGUF checkpoints (llama.cpp's single-file format) as models postlens reads.

A ``.gguf`` file, or a folder holding exactly one, is a model spec of kind ``"gguf"``. Models
load through transformers' GGUF support, which dequantizes every tensor into the requested dtype
and rebuilds the tokenizer and chat template stored in the file: the analyses then run on dense
weights, so their figures are those of the dequantized model. `GGUFTensors` reads the tensors
one at a time instead (memory-mapped by the `gguf` package, each dequantized on its own, under
transformers' parameter names), which is how ``postlens weights`` compares a GGUF fine-tune with
its base without holding either model.

Everything here needs the optional extra: ``pip install 'postlens[gguf]'``.

Example:
    >>> gguf_info(Path("missing.gguf"))
    Traceback (most recent call last):
    ...
    postlens.errors.CheckpointError: missing.gguf: not a readable GGUF file (...)
"""

from __future__ import annotations

import collections
import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.errors import CheckpointError, NotSupportedError

if TYPE_CHECKING:
    import torch

#: What a broken GGUF file raises inside the `gguf` package's reader.
_READ_ERRORS = (ValueError, OSError, IndexError, KeyError, TypeError, AssertionError)


def require_gguf() -> Any:
    """The `gguf` package, or a one-line error saying how to install it."""
    try:
        import gguf
    except ImportError:
        raise NotSupportedError(
            "reading a GGUF checkpoint needs the gguf package: pip install 'postlens[gguf]'"
        ) from None
    return gguf


def open_reader(path: Path) -> Any:
    """A `gguf.GGUFReader` of `path` (memory-mapped: nothing is read until a tensor is used).

    Readers are shared within a process while the file is unchanged (same size and
    modification time): parsing the metadata of a GGUF with a 50k-token vocabulary takes
    seconds in the gguf package, and one load asks for the header several times.

    Raises:
        CheckpointError: the file is truncated or not GGUF, naming it.
    """
    try:
        stat = Path(path).stat()
    except OSError as err:
        raise CheckpointError(f"{path}: not a readable GGUF file ({_one_line(err)})") from None
    return _cached_reader(Path(path).resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _cached_reader(path: Path, size: int, mtime_ns: int) -> Any:
    require_gguf()
    from gguf.gguf_reader import GGUFReader  # the class itself, never `shared_readers`' stand-in

    try:
        return GGUFReader(path)
    except _READ_ERRORS as err:
        raise CheckpointError(f"{path}: not a readable GGUF file ({_one_line(err)})") from None


@contextlib.contextmanager
def shared_readers() -> Iterator[None]:
    """While active, ``gguf.GGUFReader(path)`` returns the process's shared reader of `path`.

    transformers parses a GGUF file's header anew for its config, its tokenizer and its
    weights (four times per model load), each parse seconds long with a large vocabulary;
    within this context they share `open_reader`'s parse. Only read-only opens are shared.
    """
    import gguf

    package: Any = gguf  # the attribute transformers reads (``from gguf import GGUFReader``)
    original: Any = package.GGUFReader

    def shared(path: Any, mode: str = "r") -> Any:
        return open_reader(Path(path)) if mode == "r" else original(path, mode)

    package.GGUFReader = shared
    try:
        yield
    finally:
        package.GGUFReader = original


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _field(reader: Any, key: str) -> Any:
    """One metadata value (``None`` when absent)."""
    found = reader.get_field(key)
    return None if found is None else found.contents()


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file holds, from its header alone.

    Attributes:
        path: the file.
        architecture: llama.cpp's architecture name (``llama``, ``gemma3``...).
        file_type: llama.cpp's name of the file's quantization (``MOSTLY_Q4_1``...), if stated.
        tensor_types: quantization type → how many tensors are stored in it.
        n_params: parameters over all tensors.
    """

    path: Path
    architecture: str
    file_type: str | None
    tensor_types: dict[str, int]
    n_params: int

    def describe(self) -> str:
        """One line, e.g. ``GGUF llama, Q4_1 (210 tensors), F32 (61), Q8_0 (1)``."""
        kinds = sorted(self.tensor_types.items(), key=lambda kv: -kv[1])
        parts = [f"{k} ({n} tensors)" if i == 0 else f"{k} ({n})" for i, (k, n) in enumerate(kinds)]
        return f"GGUF {self.architecture}, dequantized from " + ", ".join(parts)


def gguf_info(path: Path) -> GGUFInfo:
    """Read a GGUF file's header (architecture, quantization types, size)."""
    gguf = require_gguf()
    reader = open_reader(path)
    types = collections.Counter(t.tensor_type.name for t in reader.tensors)
    code = _field(reader, "general.file_type")
    try:
        file_type = None if code is None else gguf.LlamaFileType(int(code)).name
    except ValueError:
        file_type = str(code)
    return GGUFInfo(
        path=path,
        architecture=str(_field(reader, "general.architecture") or "unknown"),
        file_type=file_type,
        tensor_types=dict(types),
        n_params=sum(int(t.n_elements) for t in reader.tensors),
    )


def check_readable(path: Path) -> GGUFInfo:
    """`gguf_info`, refusing an architecture transformers' GGUF loader does not know.

    Raises:
        NotSupportedError: the architecture (named, with those transformers reads).
        CheckpointError: the file is truncated or not GGUF.
    """
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    info = gguf_info(path)
    known = {a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")}
    if info.architecture not in known:
        raise NotSupportedError(
            f"{path}: GGUF architecture {info.architecture!r} is not one transformers can load "
            f"(it reads {', '.join(sorted(known))})"
        )
    return info


@contextlib.contextmanager
def dequantizing_progress() -> Iterator[None]:
    """transformers' per-tensor dequantization bar, shown only where postlens shows progress.

    transformers draws it with a plain `tqdm` that its own progress switch does not reach, so
    the module's `tqdm` is swapped for one that follows `postlens.progress.show_progress`.
    """
    import transformers.modeling_gguf_pytorch_utils as hf_gguf

    from postlens.progress import show_progress

    original = hf_gguf.tqdm
    hf_gguf.tqdm = functools.partial(original, disable=not show_progress(None))
    try:
        yield
    finally:
        hf_gguf.tqdm = original


@dataclass
class GGUFTensors:
    """A GGUF file's tensors under transformers' names, dequantized one at a time.

    transformers' own GGUF conversion maps the names (``blk.3.attn_q.weight`` →
    ``model.layers.3.self_attn.q_proj.weight``) and undoes llama.cpp's reordering of some
    tensors (the query and key rows of Llama-family attention, for its rotary layout), so a
    tensor read here equals the one the loaded model holds, and a GGUF child compares with a
    safetensors base entry by entry.

    Attributes:
        path: the GGUF file.
    """

    path: Path
    _reader: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._reader = open_reader(self.path)

    @cached_property
    def _conversion(self) -> tuple[Any, dict[str, str], dict[str, Any], Any]:
        """transformers' tensor processor, its GGUF → HF name map, parsed config, and model config."""
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.modeling_gguf_pytorch_utils import (
            TENSOR_PROCESSORS,
            TensorProcessor,
            get_gguf_hf_weights_map,
            load_gguf_checkpoint,
        )
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        try:
            with shared_readers():
                parsed = load_gguf_checkpoint(str(self.path), return_tensors=False)
            # The config from the same parse (what `AutoConfig.from_pretrained(gguf_file=...)`
            # builds, without parsing the file a second time).
            values = dict(parsed["config"])
            config = CONFIG_MAPPING[values["model_type"]].from_dict(values)
        except (ValueError, KeyError, NotImplementedError) as err:
            raise NotSupportedError(
                f"{self.path}: transformers cannot read this GGUF model ({_one_line(err)})"
            ) from None
        architecture = str(_field(self._reader, "general.architecture"))
        processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=parsed["config"])
        with torch.device("meta"):  # the model only lends its parameter names
            model = AutoModelForCausalLM.from_config(config)
        return processor, get_gguf_hf_weights_map(model, processor), parsed, config

    @cached_property
    def _by_name(self) -> dict[str, Any]:
        mapping = self._conversion[1]
        return {mapping[t.name]: t for t in self._reader.tensors if t.name in mapping}

    @property
    def tie_word_embeddings(self) -> bool:
        """The file has no separate output matrix: the unembedding is the embedding."""
        return bool(getattr(self._conversion[3], "tie_word_embeddings", False))

    def names(self) -> list[str]:
        """transformers' names of the tensors, in file order."""
        return list(self._by_name)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape as transformers holds it (GGUF lists dimensions fastest first)."""
        return {name: tuple(int(d) for d in reversed(t.shape)) for name, t in self._by_name.items()}

    def raw(self, name: str) -> None:
        """No stored entries to hand over: every tensor needs dequantizing (use `get`)."""
        return None

    def get(self, name: str) -> torch.Tensor:
        """One tensor, dequantized to float32, as the loaded model holds it.

        Raises:
            CheckpointError: its quantization type cannot be dequantized by the `gguf` package.
        """
        import numpy as np
        import torch

        gguf = require_gguf()
        tensor = self._by_name[name]
        try:
            weights = gguf.dequantize(tensor.data, tensor.tensor_type)
        except (NotImplementedError, ValueError) as err:
            raise CheckpointError(
                f"{self.path}: tensor {tensor.name} is stored as {tensor.tensor_type.name}, "
                f"which the gguf package cannot dequantize ({_one_line(err)})"
            ) from None
        processor, mapping, parsed, _ = self._conversion
        result = processor.process(
            weights=weights, name=tensor.name, tensor_key_mapping=mapping, parsed_parameters=parsed
        )
        out = np.ascontiguousarray(result.weights, dtype=np.float32)
        # F32 tensors come back as views of the read-only mapping; torch wants its own memory.
        return torch.from_numpy(out if out.flags.writeable else out.copy())
