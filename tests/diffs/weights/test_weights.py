"""Weight shifts against hand computations on planted differences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from postlens.cli import app
from postlens.diffs.weights import stats as weight_stats
from postlens.diffs.weights.compare import WeightDiffConfig, compare_children, compare_weights
from postlens.diffs.weights.names import classify
from postlens.diffs.weights.stats import CHUNK
from postlens.errors import CheckpointError

Q = "model.layers.0.self_attn.q_proj.weight"
DOWN = "model.layers.1.mlp.down_proj.weight"
EMB = "model.embed_tokens.weight"
NORM = "model.norm.weight"


def _base() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        Q: torch.randn(8, 8, generator=g),
        DOWN: torch.randn(10, 10, generator=g),
        EMB: torch.randn(20, 4, generator=g),
        NORM: torch.ones(4),
    }


def _planted(base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    post = {k: v.clone() for k, v in base.items()}
    post[Q][0, 0] += 0.5
    post[Q][3, 4] -= 0.25
    post[DOWN].view(-1)[::10] += 1e-3  # exactly 10% of the entries
    post[NORM][2] += 1e-6  # changed, but below the default tolerance
    return post


def _save(tmp_path, name, tensors, config=None):
    folder = tmp_path / name
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    return folder


@pytest.fixture(autouse=True, params=["c_kernel", "torch"])
def producer(request, monkeypatch):
    """Every test runs on both producers of the chunk sums: the C kernel and the torch ops."""
    if request.param == "torch":
        monkeypatch.setattr(weight_stats, "_kernels", lambda: None)
    elif weight_stats._kernels() is None:
        pytest.skip("the optional C kernels are not built")
    return request.param


@pytest.fixture
def planted(tmp_path):
    base = _base()
    post = _planted(base)
    return base, post, _save(tmp_path, "base", base), _save(tmp_path, "post", post)


def test_every_figure_matches_a_hand_computation(planted):
    base, post, b, p = planted
    diff = compare_weights(str(b), str(p), progress=False)
    rows = {t.name: t for t in diff.tensors}
    q = rows[Q]
    assert q.rel_norm == pytest.approx(
        math.sqrt(0.5**2 + 0.25**2) / float(base[Q].norm()), rel=1e-6
    )
    assert q.max_abs == pytest.approx(0.5, rel=1e-6)
    assert q.mean_abs == pytest.approx(0.75 / 64, rel=1e-5)
    assert q.frac_changed_exact == q.frac_changed_tol == 2 / 64
    assert (q.layer, q.module) == (0, "attn_q")
    down = rows[DOWN]
    assert down.frac_changed_exact == pytest.approx(0.10)
    assert down.frac_changed_tol == pytest.approx(0.10)
    assert down.max_abs == pytest.approx(1e-3, rel=1e-3)
    norm = rows[NORM]
    assert norm.frac_changed_exact == 0.25 and norm.frac_changed_tol == 0.0
    assert rows[EMB].rel_norm == 0.0 and rows[EMB].module == "embedding"
    # Global rel_norm is over all parameters together, not a mean of ratios.
    d2 = sum(float((post[k] - base[k]).double().square().sum()) for k in base)
    b2 = sum(float(base[k].double().square().sum()) for k in base)
    assert diff.summary().rel_norm == pytest.approx(math.sqrt(d2 / b2), rel=1e-6)
    assert diff.summary().n_params == sum(v.numel() for v in base.values())
    changed = 2 + 10 + 1
    assert diff.summary().frac_changed_exact == pytest.approx(changed / diff.summary().n_params)
    assert diff.summary().bytes_read == 2 * 4 * diff.summary().n_params
    by_module = diff.by_module().set_index("module")
    assert by_module.loc["attn_q", "rel_norm"] == pytest.approx(q.rel_norm)
    assert set(diff.by_layer()["layer"].dropna()) == {0, 1}
    # The per-group figures equal a pandas group-by of the per-tensor rows (float64 sums).
    frame = diff.to_frame()
    for key in ("layer", "module"):
        got = {r[key]: r for r in diff.grouped(key)}
        for k, g in frame.groupby(key, dropna=False):
            row = got[None if isinstance(k, float) and math.isnan(k) else k]
            want = math.sqrt((g.norm_diff**2).sum() / (g.norm_base**2).sum())
            assert row["rel_norm"] == pytest.approx(want, rel=1e-12)
            assert row["numel"] == g.numel.sum() and row["max_abs"] == g.max_abs.max()
            mean = (g.mean_abs * g.numel).sum() / g.numel.sum()
            assert row["mean_abs"] == pytest.approx(mean, rel=1e-12)
    assert [r["layer"] for r in diff.grouped("layer")] == [0, 1, None]


def test_bf16_base_and_fp32_post_compare_in_fp32(tmp_path):
    base = {k: v.bfloat16() for k, v in _base().items()}
    post = {k: v.float() for k, v in base.items()}
    diff = compare_weights(
        str(_save(tmp_path, "b", base)), str(_save(tmp_path, "p", post)), progress=False
    )
    assert diff.summary().rel_norm == 0.0 and diff.summary().frac_changed_exact == 0.0
    assert diff.summary().storage == "bfloat16 → float32" and not diff.summary().resolution_note


def test_a_bf16_child_states_its_resolution_beside_its_sparsity(tmp_path):
    """Updates smaller than one bf16 step round away: the "unchanged" share of a bf16 child says so."""
    base = {k: v.bfloat16() for k, v in _base().items()}
    gen = torch.Generator().manual_seed(0)
    post = {k: (v.float() * (1 + 1e-3 * torch.randn(v.shape, generator=gen))).bfloat16()
            for k, v in base.items()}  # fmt: skip
    diff = compare_weights(
        str(_save(tmp_path, "b", base)), str(_save(tmp_path, "p", post)), progress=False
    )
    s = diff.summary()
    assert s.storage == "bfloat16 → bfloat16" and s.step == 2**-8
    assert s.frac_changed_exact < 0.5  # most 0.1% updates are below a 0.39% step
    assert s.resolution_note == "bfloat16: one step is 0.39% of |w|; smaller updates round away"
    back = type(diff).from_json(diff.to_json())
    assert back.summary() == s


def test_sharded_checkpoint_gives_the_same_figures(tmp_path, planted):
    base, post, b, p = planted
    folder = tmp_path / "sharded"
    folder.mkdir()
    names = sorted(post)
    shards = {
        "model-00001-of-00002.safetensors": names[:2],
        "model-00002-of-00002.safetensors": names[2:],
    }
    for shard, keys in shards.items():
        save_file({k: post[k] for k in keys}, str(folder / shard))
    weight_map = {k: s for s, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    single = compare_weights(str(b), str(p), progress=False)
    sharded = compare_weights(str(b), str(folder), progress=False)
    assert sharded.summary().rel_norm == single.summary().rel_norm
    assert [t.to_json() for t in sharded.tensors] == [t.to_json() for t in single.tensors]


def test_nan_missing_and_mismatched_tensors_are_reported(tmp_path):
    base = _base()
    post = _planted(base)
    post[Q][1, 1] = float("nan")
    del post[EMB]
    post[DOWN] = torch.zeros(5, 5)
    post["extra.weight"] = torch.zeros(2)
    diff = compare_weights(
        str(_save(tmp_path, "b", base)), str(_save(tmp_path, "p", post)), progress=False
    )
    rows = {t.name: t for t in diff.tensors}
    assert rows[Q].nan_count == 1 and math.isfinite(rows[Q].rel_norm)
    assert rows[Q].max_abs == pytest.approx(0.5)
    assert diff.missing_in_post == [EMB] and diff.missing_in_base == ["extra.weight"]
    assert diff.shape_mismatches == [f"{DOWN}: base (10, 10) vs post (5, 5)"]
    assert not diff.ok and DOWN not in rows


def test_multi_chunk_tensor_with_nan_matches_float64(tmp_path):
    # Longer than one chunk with a ragged tail, bf16 against fp32.
    g = torch.Generator().manual_seed(2)
    n = CHUNK + CHUNK // 3 + 7
    base = {DOWN: torch.randn(n, generator=g).bfloat16()}
    post = {DOWN: base[DOWN].float() + 1e-3 * (torch.rand(n, generator=g) < 0.3)}
    post[DOWN][5], post[DOWN][n - 1] = float("nan"), 2.0  # one NaN, one large change in the tail
    row = compare_weights(
        str(_save(tmp_path, "b", base)), str(_save(tmp_path, "p", post)), progress=False
    ).tensors[0]
    b64, p64 = base[DOWN].double(), post[DOWN].double()
    keep = p64.isfinite()
    d = (p64 - b64)[keep]
    assert row.nan_count == 1 and row.numel == n
    assert row.rel_norm == pytest.approx(float(d.norm() / b64[keep].norm()), rel=1e-5)
    assert row.max_abs == pytest.approx(float(d.abs().max()), rel=1e-6)
    assert row.frac_changed_exact == pytest.approx(int((d != 0).sum()) / n)
    assert row.frac_changed_tol == pytest.approx(int((d.abs() > 1e-5).sum()) / n)


def test_truncated_file_names_the_file(tmp_path, planted):
    _, _, b, p = planted
    data = (p / "model.safetensors").read_bytes()
    (p / "model.safetensors").write_bytes(data[:-20])
    with pytest.raises(CheckpointError, match=r"model.safetensors: truncated"):
        compare_weights(str(b), str(p), progress=False)


def test_rank_and_subspace_overlap_on_a_planted_rank_two_update(tmp_path):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 16, generator=g)
    u, _, vh = torch.linalg.svd(w)
    update = 0.3 * (u[:, :2] @ vh[:2, :])  # two equal singular values, in W's top directions
    name = "model.layers.0.mlp.up_proj.weight"
    b = _save(tmp_path, "b", {name: w})
    p = _save(tmp_path, "p", {name: w + update})
    row = compare_weights(
        str(b), str(p), WeightDiffConfig(rank=True, rank_r=2), progress=False
    ).tensors[0]
    assert row.effective_rank == pytest.approx(2 / 16, rel=1e-3)
    assert row.subspace_overlap == pytest.approx(1.0, abs=1e-3)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    orth = 0.3 * (u[:, 14:16] @ vh[:2, :])  # the two weakest directions of W
    p2 = _save(tmp_path, "p2", {name: w + orth})
    row2 = compare_weights(
        str(b), str(p2), WeightDiffConfig(rank=True, rank_r=2), progress=False
    ).tensors[0]
    assert row2.subspace_overlap < 0.05


def test_three_way_cosine_of_updates(tmp_path):
    base = _base()
    sft = {k: v + 0.01 * torch.arange(v.numel()).view_as(v) for k, v in base.items()}
    rl = {k: base[k] - 2 * (sft[k] - base[k]) for k in base}
    family = compare_children(
        str(_save(tmp_path, "b", base)),
        {"sft": str(_save(tmp_path, "s", sft)), "rl": str(_save(tmp_path, "r", rl))},
        progress=False,
    )
    assert all(c == pytest.approx(-1.0, abs=1e-6) for c in family.cosines["sft_rl"].values())
    assert family.children["rl"].summary().rel_norm == pytest.approx(
        2 * family.children["sft"].summary().rel_norm, rel=1e-6
    )


def test_three_way_cosine_leaves_out_non_finite_entries(tmp_path):
    # Two chunks and a tail; a NaN in one child's second chunk, an Inf in the other's tail.
    g = torch.Generator().manual_seed(3)
    n = 2 * CHUNK + 11
    base = torch.randn(n, generator=g)
    shared = torch.randn(n, generator=g)  # the two updates agree in part: cosine ~0.5
    sft = base + 1e-2 * (shared + torch.randn(n, generator=g))
    rl = base + 1e-2 * (shared + torch.randn(n, generator=g))
    sft[CHUNK + 1], rl[n - 1] = float("nan"), float("inf")
    family = compare_children(
        str(_save(tmp_path, "b", {DOWN: base})),
        {
            "sft": str(_save(tmp_path, "s", {DOWN: sft})),
            "rl": str(_save(tmp_path, "r", {DOWN: rl})),
        },
        progress=False,
    )
    keep = sft.isfinite() & rl.isfinite()
    d_s, d_r = (sft - base)[keep].double(), (rl - base)[keep].double()
    expected = float(d_s @ d_r / (d_s.norm() * d_r.norm()))
    assert family.cosines["sft_rl"][DOWN] == pytest.approx(expected, rel=1e-5)


def test_tied_unembedding_is_counted_once(tmp_path):
    base = _base() | {"lm_head.weight": _base()[EMB].clone()}
    config = {"model_type": "llama", "tie_word_embeddings": True}
    b = _save(tmp_path, "b", base, config)
    p = _save(tmp_path, "p", base, config)
    names = [t.name for t in compare_weights(str(b), str(p), progress=False).tensors]
    assert "lm_head.weight" not in names and EMB in names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("transformer.h.3.attn.c_attn.weight", (3, "attn_qkv")),
        ("transformer.h.3.mlp.c_proj.weight", (3, "mlp_out")),
        ("transformer.wte.weight", (None, "embedding")),
        ("gpt_neox.layers.2.attention.query_key_value.weight", (2, "attn_qkv")),
        ("gpt_neox.layers.2.mlp.dense_h_to_4h.weight", (2, "mlp_in")),
        ("embed_out.weight", (None, "unembedding")),
        ("model.layers.5.self_attn.o_proj.weight", (5, "attn_o")),
        ("model.layers.5.mlp.gate_proj.weight", (5, "mlp_gate")),
        ("model.layers.5.input_layernorm.weight", (5, "norm")),
        ("something.strange", (None, "other")),
    ],
)
def test_names_map_to_layer_and_module(name, expected):
    assert classify(name) == expected


def test_cli_json_schema_and_exit_codes(tmp_path, planted):
    _, post, b, p = planted
    out = tmp_path / "w.json"
    runner = CliRunner()
    result = runner.invoke(app, ["weights", str(b), str(p), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())["children"]["post"]  # the schema of FamilyWeightDiff
    assert {"base", "post", "tensors", "summary"} <= set(data)
    assert {
        "rel_norm",
        "frac_changed_exact",
        "frac_changed_tol",
        "n_params",
        "bytes_read",
        "seconds",
    } <= set(data["summary"])
    row = data["tensors"][0]
    for key in ("name", "layer", "module", "shape", "numel", "rel_norm", "max_abs", "mean_abs"):
        assert key in row
    del post[EMB]
    broken = _save(tmp_path, "broken", post)
    result = runner.invoke(
        app, ["weights", str(b), str(broken), "--json", str(tmp_path / "x.json")]
    )
    assert result.exit_code == 1 and EMB in result.output
    written = json.loads((tmp_path / "x.json").read_text())["children"]["post"]
    assert np.isfinite(written["summary"]["rel_norm"])
    bad = runner.invoke(app, ["weights", str(b), str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "unknown model spec" in bad.output


def test_a_tied_config_with_its_own_unembedding_is_compared_as_loaded(tmp_path):
    """A child whose config says tied but whose file holds a different lm_head is loaded untied
    by transformers: its lm_head change is reported (against the base's embedding, the base's
    unembedding), and the global figure agrees with the models' own weights."""

    from transformers import AutoModelForCausalLM

    from postlens.testing import tiny_model

    base, tok = tiny_model("llama", tie_word_embeddings=True)
    base.save_pretrained(tmp_path / "base")
    child_dir = tmp_path / "child"
    base.save_pretrained(child_dir)
    state = load_file(str(child_dir / "model.safetensors"))
    assert "lm_head.weight" not in state
    state["lm_head.weight"] = state["model.embed_tokens.weight"] + 0.5
    save_file(state, str(child_dir / "model.safetensors"), metadata={"format": "pt"})
    assert json.loads((child_dir / "config.json").read_text())["tie_word_embeddings"]
    diff = compare_weights(str(tmp_path / "base"), str(child_dir), progress=False)
    rows = {t.name: t for t in diff.tensors}
    assert rows["lm_head.weight"].frac_changed_exact == 1.0 and not diff.missing_in_base
    loaded = [AutoModelForCausalLM.from_pretrained(d) for d in (tmp_path / "base", child_dir)]
    head = [m.lm_head.weight.detach().double() for m in loaded]
    assert rows["lm_head.weight"].norm_diff == pytest.approx(
        float((head[1] - head[0]).norm()), rel=1e-6
    )
    assert sum(t.norm_diff > 0 for t in diff.tensors) == 1  # nothing else moved
    # A tied checkpoint that stores an unembedding equal to its embedding counts it once.
    state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
    save_file(state, str(child_dir / "model.safetensors"), metadata={"format": "pt"})
    same = compare_weights(str(tmp_path / "base"), str(child_dir), progress=False)
    assert "lm_head.weight" not in {t.name for t in same.tensors} and same.ok


def test_the_rank_option_prints_the_update_ranks():
    result = CliRunner().invoke(app, ["weights", "organism:base", "organism:rl", "--rank"])
    assert result.exit_code == 0, result.output
    assert "update rank of the 12 most-changed matrices" in " ".join(result.output.split())
    plain = CliRunner().invoke(app, ["weights", "organism:base", "organism:rl"])
    assert "update rank" not in plain.output
