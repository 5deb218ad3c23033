"""Safe loading of a Hugging Face causal LM and its tokenizer from a model spec.

Loading never unpickles untrusted files: safetensors is preferred; a ``.bin`` checkpoint is only
read through transformers with ``weights_only=True`` semantics (torch >= 2.6 refuses pickled code).
``trust_remote_code`` stays off unless the caller turns it on.

A PEFT LoRA adapter (spec kind ``"adapter"``) loads as its base, loaded again for the child, with
the adapter applied through ``peft`` and then merged (``merge_and_unload``): both backends
(nnsight and TransformerBridge) then see a plain transformers model with the same modules and
hook points as the base, and a forward costs what the base's does. The price is float rounding:
the merged weight is W + scale · B @ A rounded once to the model's dtype, so logits differ from
peft's unmerged forward (x Wᵀ + scale · (x Aᵀ) Bᵀ) by float round-off (~1e-6 relative in
float32). In bfloat16 an update entry smaller than half a unit in the last place of W is lost in
the merge: exact figures of the update itself come from `postlens.diffs.weights.compare`, which reads
A and B, not from the merged model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub.errors import StrictDataclassError

from postlens.errors import CheckpointError, ConfigError, NotSupportedError, SpecError
from postlens.models.adapters import (
    adapter_base,
    adapter_shapes,
    check_adapter_base,
    lora_modules,
    read_adapter_config,
)
from postlens.models.loading_info import check_finite, check_loading_info
from postlens.models.specs import ResolvedSpec, is_adapter_folder, resolve_spec

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
#: How transformers' RuntimeErrors about a broken state dict begin (other RuntimeErrors are bugs).
_STATE_DICT_ERRORS = (
    "Error(s) in loading state_dict",
    "We encountered some issues during automatic",
)


def check_device(device: str | None) -> None:
    """Refuse a device that is not there, before anything loads.

    Raises:
        ConfigError: e.g. ``cuda`` on a machine without a GPU, or a GPU index too high.
    """
    if device is None or device in ("cpu", "auto"):  # auto: accelerate's device_map="auto"
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA GPU is available here (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available here")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model.

    Attributes:
        device: a torch device string, e.g. ``"cpu"`` or ``"cuda:0"``; ``None`` picks CPU unless
            ``device_map`` is given.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``None`` (float32).
        device_map: passed to transformers (accelerate), e.g. ``"auto"``, for pairs too large for
            one device.
        trust_remote_code: let transformers run code shipped with the checkpoint. Off by default.
    """

    device: str | None = None
    dtype: str | None = None
    device_map: str | dict[str, Any] | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.dtype not in (None, "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.device is not None and self.device_map is not None:
            raise ConfigError("give either device or device_map, not both")

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype or "float32")


def check_safetensors_file(path: Path) -> None:
    """Validate a safetensors file's header without reading its tensors.

    Raises:
        CheckpointError: the file is truncated or its header is corrupted, naming the file.
    """
    from postlens.models.safetensors_header import CODES, read_header

    infos = read_header(path)
    # transformers casts a stored integer tensor into the float parameter it fills: int8 codes
    # would become the weights themselves (their scale lives elsewhere), a wrong model that runs.
    integer = {c for c, (_, name) in CODES.items() if name.startswith(("int", "uint", "bool"))}
    coded = [n for n, i in infos.items() if i.code in integer and n.endswith((".weight", ".bias"))]
    if coded:
        shown = ", ".join(f"{n} ({infos[n].code})" for n in coded[:3])
        raise CheckpointError(
            f"{path}: {shown}{' ...' if len(coded) > 3 else ''} stored as integers: quantized "
            "codes without their scale cannot be read as weights (give a dequantized checkpoint)"
        )


def check_model_folder(path: Path) -> None:
    """Check that a local model (or adapter) folder holds weights and its safetensors are readable."""
    if is_adapter_folder(path):
        config = read_adapter_config(path)
        adapter_shapes(config)  # validates the header (or reads a .bin through weights_only)
        return
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(
            f"{path}: no weights found (expected one of {', '.join(WEIGHT_FILES)})"
        )
    for file in sorted(path.glob("*.safetensors")):
        check_safetensors_file(file)


def check_checkpoint(spec: ResolvedSpec) -> None:
    """Check a spec's weights before anything loads (a hub id is checked when it downloads).

    Raises:
        CheckpointError: missing weights, or a truncated or corrupted file (named).
        NotSupportedError: a GGUF file without the gguf package installed.
    """
    if spec.kind == "gguf":
        from postlens.models.gguf import check_readable

        check_readable(spec.gguf_path)
    elif spec.path is not None:
        check_model_folder(spec.path)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars, log records and warnings inside the block.

    Both settings are restored on exit, so a library user's own configuration survives. A
    caller who raised transformers' verbosity to INFO or more (``postlens --verbose`` does,
    through `postlens.cli.app.setup_logging`) asked to see the loading report: the block then
    changes nothing.

    Example:
        >>> from transformers.utils import logging as hf_logging
        >>> before = hf_logging.get_verbosity()
        >>> with quiet_transformers():
        ...     quiet = hf_logging.get_verbosity()
        >>> quiet >= hf_logging.ERROR, hf_logging.get_verbosity() == before
        (True, True)
    """
    from huggingface_hub import constants as hub_constants
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    if level <= logging.INFO:
        yield
        return
    # HF_HUB_DISABLE_PROGRESS_BARS=0 is the user insisting on bars; hub would warn if overridden.
    bars = (
        hf_logging.is_progress_bar_enabled() and hub_constants.HF_HUB_DISABLE_PROGRESS_BARS is None
    )
    hf_logging.set_verbosity_error()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            for module in (r"transformers(\.|$)", r"huggingface_hub(\.|$)", r"peft(\.|$)"):
                warnings.filterwarnings("ignore", module=module)
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


def load_tokenizer(
    spec: ResolvedSpec, options: LoadOptions, base: ResolvedSpec | None = None
) -> Any:
    """Load a tokenizer with ``from_pretrained`` (TransformerBridge needs one loaded this way).

    An adapter folder without tokenizer files uses its base's tokenizer (`base`, or the base
    its config names).
    """
    from transformers import AutoTokenizer

    has_files = spec.kind not in ("adapter", "local") or any(
        (Path(spec.location) / f).is_file() for f in _TOKENIZER_FILES
    )
    if spec.kind == "adapter" and not has_files:
        return load_tokenizer(_base_of(spec, base), options)
    if not has_files:
        raise SpecError(
            f"{spec.spec}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); save the "
            "tokenizer beside the weights (tokenizer.save_pretrained), e.g. the base's"
        )
    gguf = {"gguf_file": spec.file} if spec.kind == "gguf" else {}
    try:
        with quiet_transformers(), _shared_gguf_readers(spec):
            tok = AutoTokenizer.from_pretrained(
                spec.location, trust_remote_code=options.trust_remote_code, **gguf
            )
    except (OSError, ValueError, StrictDataclassError) as err:
        raise SpecError(f"{spec.spec}: cannot load the tokenizer ({_one_line(err)})") from None
    if len(tok) < 2:  # an empty vocabulary loads without complaint and breaks every analysis
        raise SpecError(f"{spec.spec}: its tokenizer has a vocabulary of {len(tok)} token(s)")
    if tok.pad_token is None:
        # Batched runs need a pad token; eos is the usual, harmless choice for causal LMs.
        tok.pad_token = tok.eos_token
    return tok


def _shared_gguf_readers(spec: ResolvedSpec) -> contextlib.AbstractContextManager[Any]:
    """`postlens.models.gguf.shared_readers` for a GGUF spec, else nothing."""
    if spec.kind != "gguf":
        return contextlib.nullcontext()
    from postlens.models.gguf import shared_readers

    return shared_readers()


def load_hf_model(
    spec: str | ResolvedSpec,
    options: LoadOptions | None = None,
    base: ResolvedSpec | None = None,
    base_model: Any = None,
) -> Any:
    """Load a causal LM from a spec, safely, in eval mode, refusing a checkpoint that does not match.

    Args:
        spec: the model's spec; an adapter folder loads as its base with the adapter merged.
        options: dtype, device, ...
        base: for an adapter, the base it must apply to (checked against the base its config
            names); ``None`` loads the base the adapter names.
        base_model: for an adapter, `base` already loaded with the same `options`: the adapter
            is merged into a copy of it instead of loading the base a second time.

    Raises:
        CheckpointError: missing weights, a corrupted file, tensors missing, unexpected or of
            the wrong shape for the model the config describes (named, with both shapes), or
            NaN / ±inf weights (named).

    Example:
        >>> model = load_hf_model("organism:base")
        >>> model.config.num_hidden_layers, model.training
        (4, False)
    """
    options = options or LoadOptions()
    resolved = spec if isinstance(spec, ResolvedSpec) else resolve_spec(spec)
    model = _load(resolved, options, base, base_model)
    check_finite(model, resolved.spec)
    return model


def _load(
    resolved: ResolvedSpec,
    options: LoadOptions,
    base: ResolvedSpec | None = None,
    base_model: Any = None,
) -> Any:
    from transformers import AutoModelForCausalLM

    if resolved.kind == "adapter":
        return load_adapted_model(resolved, options, base, base_model)
    if resolved.kind == "gguf":
        return load_gguf_model(resolved, options)
    if resolved.path is not None:
        check_model_folder(resolved.path)
    kwargs: dict[str, Any] = {
        "dtype": options.torch_dtype(),
        "trust_remote_code": options.trust_remote_code,
        "output_loading_info": True,
        # Without it a wrong shape is a RuntimeError after a multi-line report; with it the shape
        # lands in the loading info and `check_loading_info` refuses it in one line.
        "ignore_mismatched_sizes": True,
    }
    if options.device_map is not None:
        kwargs["device_map"] = options.device_map
    if resolved.path is not None and any(resolved.path.glob("*.safetensors")):
        kwargs["use_safetensors"] = True
    try:
        with quiet_transformers():
            loaded: Any = AutoModelForCausalLM.from_pretrained(resolved.location, **kwargs)
            model, info = loaded  # output_loading_info=True: (model, info)
    except (OSError, ValueError, KeyError, StrictDataclassError) as err:
        raise CheckpointError(
            f"{resolved.spec}: cannot load the model ({_one_line(err)})"
        ) from None
    except pickle.UnpicklingError as err:  # torch's weights_only loader refused pickled code
        files = (
            ", ".join(str(f) for f in sorted(Path(resolved.location).glob("*.bin")))
            or resolved.location
        )
        refused = str(err).split("WeightsUnpickler error:")[-1].strip().split(".")[0]
        raise CheckpointError(
            f"{files}: refused: the checkpoint holds pickled code, not only tensors ({refused}); "
            "postlens never unpickles untrusted files (convert it to safetensors if you trust it)"
        ) from None
    except RuntimeError as err:
        if not str(err).startswith(_STATE_DICT_ERRORS):
            raise
        raise CheckpointError(
            f"{resolved.location}: cannot load the model ({_one_line(err)})"
        ) from None
    check_loading_info(resolved.location, info)
    if options.device_map is None:
        model.to(options.device or "cpu")
    model.eval()
    return model


def load_gguf_model(spec: ResolvedSpec, options: LoadOptions) -> Any:
    """Load a GGUF checkpoint through transformers, every tensor dequantized to `options.dtype`.

    transformers can keep GGUF weights packed in their blocks where a matmul kernel exists; postlens
    asks for dense weights always, since its analyses read, compare and patch the weights
    themselves. transformers' GGUF quantizer is then detached (with its config entry), so the
    model saves and wraps like any other.

    Raises:
        NotSupportedError: the gguf package is missing, or transformers cannot read the file's
            architecture (named).
        CheckpointError: the file is truncated or corrupted.
    """
    from transformers import AutoModelForCausalLM, GgufConfig

    from postlens.models.gguf import check_readable, dequantizing_progress, shared_readers

    info = check_readable(spec.gguf_path)  # a broken file, an unknown architecture, no package
    dense = GgufConfig(gguf_file=spec.file, dequantize=True)
    kwargs: dict[str, Any] = {
        "gguf_file": spec.file,
        "dtype": options.torch_dtype(),
        "quantization_config": dense,
    }
    if options.device_map is not None:
        kwargs["device_map"] = options.device_map
    try:
        with quiet_transformers(), dequantizing_progress(), shared_readers():
            model: Any = AutoModelForCausalLM.from_pretrained(spec.location, **kwargs)
    except (ValueError, KeyError, NotImplementedError) as err:
        raise NotSupportedError(
            f"{spec.gguf_path}: transformers cannot load this GGUF model "
            f"(architecture {info.architecture!r}: {_one_line(err)})"
        ) from None
    except (OSError, RuntimeError) as err:
        raise CheckpointError(
            f"{spec.gguf_path}: cannot load the model ({_one_line(err)})"
        ) from None
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if options.device_map is None:
        model.to(options.device or "cpu")
    model.eval()
    return model


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _base_of(adapter: ResolvedSpec, base: ResolvedSpec | None) -> ResolvedSpec:
    """The base an adapter applies to: `base` (checked against its config), else the one it names."""
    if base is not None:
        check_adapter_base(adapter, base)
        return base
    named = adapter_base(read_adapter_config(adapter.location))
    if named is None:
        raise SpecError(
            f"adapter {adapter.spec}: its adapter_config.json names no base "
            "(base_model_name_or_path); give the base model explicitly"
        )
    return named


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise NotSupportedError(
            "loading a LoRA adapter needs the peft library: pip install 'postlens[adapters]'"
        ) from None
    return peft


def load_adapted_model(
    adapter: ResolvedSpec,
    options: LoadOptions,
    base: ResolvedSpec | None = None,
    base_model: Any = None,
) -> Any:
    """Load an adapter's base afresh (or copy `base_model`, that base already loaded), apply the
    adapter with peft, and merge it in.

    See the module docstring for why the adapter is merged and what that rounds. A copy of a
    loaded base is bit-identical to loading it again, and much cheaper for a GGUF base (whose
    load dequantizes every tensor); a base placed by a device map is loaded again instead.

    Raises:
        SpecError: the adapter names another base than `base`, or targets modules the base
            does not have (named).
        NotSupportedError: peft is not installed, or the adapter is not plain LoRA/rsLoRA.

    Example:
        >>> from postlens.testing import save_tiny_adapter
        >>> folder = save_tiny_adapter("adapter", "organism:base", seed=0)
        >>> model = load_adapted_model(resolve_spec(str(folder)), LoadOptions())
        >>> type(model).__name__, model.training
        ('LlamaForCausalLM', False)
    """
    config = read_adapter_config(adapter.location)
    base = _base_of(adapter, base)
    peft = _peft()
    if base_model is not None and options.device_map is None:
        model = copy.deepcopy(base_model)
    else:
        model = _load(base, options)  # load_hf_model checks the merged model's weights
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    lora_modules(config, adapter_shapes(config), shapes)  # names what does not fit, in one line
    try:
        with quiet_transformers():
            adapted = peft.PeftModel.from_pretrained(model, adapter.location, is_trainable=False)
            merged = adapted.merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{adapter.spec}: cannot apply the adapter ({_one_line(err)})"
        ) from None
    merged.eval()
    return merged
