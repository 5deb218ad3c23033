"""``postlens weights`` on float32/bfloat16 safetensors never imports torch.

Its start-up was mostly ``import torch``; the usual comparison now maps the stored entries with
numpy and sums them with the C kernel. These tests run the command in a fresh interpreter and
check that torch was never loaded, and that its figures are those of the torch paths: exactly
those of the kernel fed torch tensors (as before), and those of the torch ops (no kernel) to
float32 round-off.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import safetensors.torch as st
import torch

from postlens.diffs.weights import stats as weight_stats
from postlens.diffs.weights.checkpoint_io import CheckpointReader
from postlens.diffs.weights.compare import compare_weights
from postlens.testing import save_model, tiny_model

pytestmark = pytest.mark.skipif(
    weight_stats._kernels() is None, reason="the optional C kernels are not built"
)

#: Runs the command in-process in a fresh interpreter; prints whether torch got loaded.
RUN = """
import sys
from postlens.cli import main
sys.argv = ["postlens", "weights", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
print("EXIT", code, "TORCH", "torch" in sys.modules)
"""


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def pair(request, tmp_path_factory):
    """A tiny base and a post-trained copy (a third of the entries moved), saved in one dtype.

    The vocabulary is large enough for the embedding to span two chunks and a ragged tail.
    """
    folder = tmp_path_factory.mktemp(request.param)
    model, tok = tiny_model(vocab_size=20_000)
    dtype = getattr(torch, request.param)
    base = save_model(model.to(dtype), tok, folder / "base")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            moved = torch.rand(p.shape, generator=g) < 0.3
            p.add_((1e-2 * torch.randn(p.shape, generator=g) * moved).to(dtype))
    post = save_model(model, tok, folder / "post")
    return base, post


def _command(tmp_path, *args: str) -> tuple[dict, str]:
    out = tmp_path / "weights.json"
    done = subprocess.run(
        [sys.executable, "-c", RUN, *map(str, args), "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout.strip().splitlines()[-1]


def _figures(diff_json: dict) -> list[dict]:
    return diff_json["tensors"]


def test_the_command_never_imports_torch(tmp_path, pair):
    data, status = _command(tmp_path, *pair)
    assert status == "EXIT 0 TORCH False"
    post = data["children"]["post"]
    assert post["summary"]["frac_changed_exact"] > 0.2 and post["summary"]["n_nonfinite"] == 0


def test_nor_with_a_second_child(tmp_path, pair):
    base, post = pair
    data, status = _command(tmp_path, base, post, "--other", base)
    assert status == "EXIT 0 TORCH False"
    assert set(data["update_cosine"]["post_other"].values()) == {None}  # base vs itself: Δ = 0


def test_figures_equal_the_torch_paths(tmp_path, pair, monkeypatch):
    base, post = pair
    data, _ = _command(tmp_path, base, post)
    raw = _figures(data["children"]["post"])
    # The kernel fed torch tensors (the path before the raw numpy views): the very same figures.
    with monkeypatch.context() as m:
        m.setattr(CheckpointReader, "raw", lambda self, name: None)
        tensors = compare_weights(str(base), str(post), progress=False)
    assert raw == _figures(tensors.to_json())
    # The torch ops (no kernel): counts and max |Δ| exact, sums to float32 round-off (torch sums
    # a chunk in float32, the kernel folds blocks into float64: test_weight_stats's tolerance).
    with monkeypatch.context() as m:
        m.setattr(weight_stats, "_kernels", lambda: None)
        ops = _figures(compare_weights(str(base), str(post), progress=False).to_json())
    assert [t["name"] for t in raw] == [t["name"] for t in ops]
    for got, want in zip(raw, ops, strict=True):
        for key in ("numel", "max_abs", "frac_changed_exact", "frac_changed_tol", "shape"):
            assert got[key] == want[key], (got["name"], key)
        for key in ("rel_norm", "mean_abs", "norm_base", "norm_diff"):
            assert math.isclose(got[key], want[key], rel_tol=3e-5, abs_tol=1e-12), (got, key)


def test_a_non_finite_chunk_takes_the_masked_torch_path(tmp_path, pair):
    base, post = pair
    name = "model.embed_tokens.weight"  # a NaN in its last (ragged) chunk
    tensors = st.load_file(str(post / "model.safetensors"))
    tensors[name].view(-1)[-1] = float("nan")
    bad = tmp_path / "bad"
    bad.mkdir()
    st.save_file(tensors, str(bad / "model.safetensors"))
    (bad / "config.json").write_text((post / "config.json").read_text())
    data, status = _command(tmp_path, base, bad, "--allow-nonfinite")
    assert status == "EXIT 0 TORCH True"  # the kernel's non-finite row is redone by torch
    rows = {t["name"]: t for t in data["children"]["post"]["tensors"]}
    clean = {t["name"]: t for t in _command(tmp_path, base, post)[0]["children"]["post"]["tensors"]}
    assert rows.pop(name)["nan_count"] == 1 and clean.pop(name)["nan_count"] == 0
    assert rows == clean  # every other tensor is untouched by the masked path
