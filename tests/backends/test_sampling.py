"""Sampling: the same seeds give the same samples on every backend, with the KV cache in the
compute dtype, and batching does not change a greedy completion."""

from __future__ import annotations

import pytest
import torch

from postlens import ModelPair
from postlens.sampling.generation import sample_completions

PROMPTS = ["q: 12 + 34 = ?", "hello", "abc def"]


@pytest.fixture(scope="module")
def llama(tiny_dirs):
    return str(tiny_dirs["llama"])


def _ids(pair: ModelPair, **kwargs) -> list[list[int]]:
    out = sample_completions(pair.post, pair.tokenizer, PROMPTS, progress=False, **kwargs)
    return [s.completion_ids for s in out]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_same_seed_gives_the_same_samples_on_both_backends(llama, dtype):
    pairs = {
        b: ModelPair.load(llama, llama, backend=b, dtype=dtype)
        for b in ("nnsight", "transformer_lens")
    }
    kwargs = dict(n=3, max_new_tokens=12, temperature=1.0, seed=5, batch_size=4)
    samples = {b: _ids(p, **kwargs) for b, p in pairs.items()}
    assert samples["nnsight"] == samples["transformer_lens"]
    assert samples["nnsight"] == _ids(pairs["nnsight"], **kwargs)  # and again on one backend
    assert samples["nnsight"] != _ids(pairs["nnsight"], **{**kwargs, "seed": 6})


def test_the_kv_cache_is_kept_in_the_compute_dtype(llama):
    pair = ModelPair.load(llama, llama, dtype="bfloat16")
    enc = pair.tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side="left")
    out = pair.post.generate(
        enc["input_ids"], enc["attention_mask"], max_new_tokens=4, do_sample=False,
        return_dict_in_generate=True,
    )  # fmt: skip
    keys = [layer.keys for layer in out.past_key_values.layers]
    assert keys and all(k.dtype == torch.bfloat16 for k in keys)


def test_greedy_completions_do_not_depend_on_the_batch(llama):
    pair = ModelPair.load(llama, llama)
    kwargs = dict(n=1, max_new_tokens=10, temperature=0.0)
    assert _ids(pair, batch_size=1, **kwargs) == _ids(pair, batch_size=3, **kwargs)


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_progress_moves_within_one_batch_and_changes_no_sample(llama, backend, monkeypatch):
    """One batch of every sequence used to show 0/1 until it ended: the bar now counts decoding
    steps, and watching it changes no sample."""
    import postlens.sampling.generation as generation

    seen = []

    class Bar:
        disable, n = False, 0

        def __init__(self, *args, total, **kwargs):
            self.total = total

        def update(self, k):
            self.n += k
            seen.append(self.n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    pair = ModelPair.load(llama, llama, backend=backend)
    kwargs = dict(n=2, max_new_tokens=12, temperature=1.0, seed=3, batch_size=64)
    quiet = _ids(pair, **kwargs)
    monkeypatch.setattr("tqdm.auto.tqdm", Bar)
    monkeypatch.setattr(generation, "show_progress", lambda progress: True)
    out = sample_completions(pair.post, pair.tokenizer, PROMPTS, progress=True, **kwargs)
    assert [s.completion_ids for s in out] == quiet
    assert len(seen) >= 3 and seen[-1] == 12 and seen == sorted(seen)
