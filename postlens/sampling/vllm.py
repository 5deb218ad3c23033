"""Sampling through vLLM (the ``vllm`` extra, GPU only) for pass@k-scale sampling.

pass@k needs n × problems completions per model; on a GPU, vLLM's continuous batching and paged
KV cache sample them many times faster than a Hugging Face ``generate`` loop, so postlens hands
that job to vLLM instead of growing its own engine. What stays postlens's: the prompts are the
exact ids postlens's own sampler would feed (chat template applied by postlens, passed as
``TokensPrompt``, vLLM's tokenizer never used), sampling stops at the same stop ids, and the
returned ids are cut at the first stop id and decoded with the pair's tokenizer — so the
verifiers see the same kind of `Sample` as from `postlens.sampling.generation.sample_completions`.

A PEFT LoRA child is served by vLLM's own LoRA support (the base with ``enable_lora`` and a
``LoRARequest`` for the adapter folder). vLLM's sampler has its own random streams: one seed gives
reproducible samples, but not the ones postlens's sampler draws, so the two engines agree in
distribution (pass@k within its bootstrap interval), not sample by sample.

Example:
    >>> vllm_unavailable() is None or "vllm" in vllm_unavailable()
    True
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from postlens.errors import ConfigError, NotSupportedError, SpecError
from postlens.models.adapters import adapter_base, read_adapter_config
from postlens.models.specs import ResolvedSpec

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

ENGINES = ("postlens", "vllm")


def vllm_unavailable() -> str | None:
    """Why vLLM cannot sample here (no package, no GPU), or ``None`` when it can."""
    if importlib.util.find_spec("vllm") is None:
        return "engine 'vllm' needs the vllm package: pip install 'postlens[vllm]' (GPU only)"
    import torch

    if not torch.cuda.is_available():
        return "engine 'vllm' samples on a GPU, and no CUDA device is visible here"
    return None


def check_engine(engine: str) -> None:
    """Refuse an unknown engine, or vLLM where it cannot run (before any model loads)."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "vllm" and (reason := vllm_unavailable()):
        raise NotSupportedError(reason)


def sample_with_vllm(
    spec: ResolvedSpec,
    base: ResolvedSpec | None,
    backend: Any,
    tokenizer: Tokenizer,
    prompts: Sequence[Any],
    settings: dict[str, Any],
    label: str = "",
) -> list[Any]:
    """`settings["n"]` completions per prompt from the model at `spec`, sampled by vLLM.

    Args:
        spec: the model (a local folder, a hub id, or a PEFT adapter folder on `base`).
        base: what an adapter is applied to (the family's base; ``None``: the base its
            ``adapter_config.json`` names).
        backend: the model as postlens loaded it (its stop ids and dtype are used).
        tokenizer: the pair's tokenizer (prompt ids and decoding).
        prompts: the prompts, plain or formatted (`postlens.models.chat.TemplatedPrompt`).
        settings: ``n``, ``max_new_tokens``, ``temperature``, ``seed`` and
            ``gpu_memory`` (vLLM's ``gpu_memory_utilization``: postlens's own copy of the
            models shares the GPU).
        label: the model's name in the family, stored on each `Sample`.

    Returns:
        `postlens.data.batch.Sample` objects, prompt-major (the n completions of prompt 0 first).
    """
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from postlens.data.batch import Sample
    from postlens.sampling.generation import prompt_ids, sampling_stop_ids, until_stop

    stop_ids = sampling_stop_ids(backend, tokenizer)
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    engine_args: dict[str, Any] = {
        "dtype": str(backend.hf_model.dtype).removeprefix("torch."),
        "seed": settings["seed"],
        "gpu_memory_utilization": settings["gpu_memory"],
        "skip_tokenizer_init": True,  # postlens tokenises and decodes; vLLM sees ids only
    }
    lora = None
    model = spec.location
    if spec.kind == "adapter":
        from vllm.lora.request import LoRARequest

        config = read_adapter_config(spec.location)
        model = _adapter_base(spec, base, config).location
        rank = max([config.r, *config.rank_pattern.values()])  # vLLM reserves the largest
        engine_args |= {"enable_lora": True, "max_lora_rank": rank}
        lora = LoRARequest(label or "adapter", 1, spec.location)
    llm = LLM(model=model, **engine_args)
    params = SamplingParams(
        n=settings["n"],
        temperature=settings["temperature"],
        max_tokens=settings["max_new_tokens"],
        seed=settings["seed"],
        stop_token_ids=list(stop_ids),
        detokenize=False,
    )
    requests = [TokensPrompt(prompt_token_ids=row) for row in ids]
    outputs = llm.generate(requests, params, use_tqdm=False, lora_request=lora)
    samples = []
    for prompt, row, out in zip(prompts, ids, outputs, strict=True):
        for choice in out.outputs:
            completion = until_stop(list(choice.token_ids), stop_ids)
            text = str(tokenizer.decode(completion, skip_special_tokens=True))
            samples.append(Sample(str(prompt), text, row, completion, label))
    del llm  # free the GPU for the next model's engine
    gc.collect()
    return samples


def _adapter_base(spec: ResolvedSpec, base: ResolvedSpec | None, config: Any) -> ResolvedSpec:
    """The model vLLM loads under the adapter at `spec`."""
    base = base or adapter_base(config)
    if base is None:
        raise SpecError(f"{spec.location}: the adapter names no base; load it with its base")
    return base
