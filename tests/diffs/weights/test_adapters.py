"""PEFT LoRA adapters as post models: weight figures against float64, forwards against peft."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from safetensors.torch import load_file

import postlens as pl
from postlens.diffs.weights.compare import WeightDiffConfig, compare_children, compare_weights
from postlens.errors import NotSupportedError, SpecError
from postlens.models.adapters import read_adapter_config
from postlens.models.loading import LoadOptions, load_hf_model
from postlens.models.specs import resolve_spec
from postlens.pair import ModelPair
from postlens.testing import save_tiny_adapter

BASE = "organism:base"
TARGETS = ("q_proj", "v_proj", "down_proj")
PREFIX = "base_model.model."


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return save_tiny_adapter(tmp_path_factory.mktemp("lora") / "a", BASE, r=4, alpha=8, seed=1)


def _base_tensors(spec: str = BASE) -> dict[str, torch.Tensor]:
    return load_file(str(resolve_spec(spec).path / "model.safetensors"))


def _hand_deltas(folder, transposed: bool = False) -> dict[str, torch.Tensor]:
    """Base weight name → float64 ΔW = (W + scale · B @ A) − W, from the files by hand."""
    cfg, lora = read_adapter_config(folder), load_file(str(folder / "adapter_model.safetensors"))
    out = {}
    for key, a in lora.items():
        if ".lora_A" not in key and ".lora_embedding_A" not in key:
            continue
        module = key[len(PREFIX) :].split(".lora_")[0]
        b = lora[key.replace("_A", "_B")]
        r, alpha = a.shape[0], cfg.alpha_pattern.get(module.split(".")[-1], cfg.alpha)
        scale = alpha / (math.sqrt(r) if cfg.use_rslora else r)
        delta = scale * (b.double() @ a.double())
        out[f"{module}.weight"] = delta.T if transposed or "embedding" in key else delta
    return out


def _check_figures(diff, base, deltas, atol=1e-5):
    for t in diff.tensors:
        w = base[t.name].double()
        if t.name not in deltas:  # untouched by the adapter: reported unchanged
            assert (t.rel_norm, t.max_abs, t.frac_changed_exact, t.rank_bound) == (0, 0, 0, None)
            continue
        d = (w + deltas[t.name]) - w
        assert t.rel_norm == pytest.approx(float(d.norm() / w.norm()), rel=1e-9)
        assert t.norm_diff == pytest.approx(float(d.norm()), rel=1e-9)
        assert t.max_abs == pytest.approx(float(d.abs().max()), rel=1e-9)
        assert t.mean_abs == pytest.approx(float(d.abs().mean()), rel=1e-9)
        assert t.frac_changed_exact == float((d != 0).double().mean())
        assert t.frac_changed_tol == float((d.abs() > atol).double().mean())
    assert {t.name for t in diff.tensors if t.rank_bound} == set(deltas)


def test_lora_figures_match_a_float64_hand_computation(adapter):
    base, deltas = _base_tensors(), _hand_deltas(adapter)
    assert len(deltas) == 3 * 4 and all(float(d.abs().max()) > 0 for d in deltas.values())
    diff = compare_weights(BASE, str(adapter), progress=False)
    assert diff.ok
    _check_figures(diff, base, deltas)
    total_d = sum(float(d.square().sum()) for d in deltas.values())
    total_w = sum(float(base[t.name].double().square().sum()) for t in diff.tensors)
    # The untouched tensors' norms come from float32 reductions (relative error ≲ 4e-7).
    assert diff.summary().rel_norm == pytest.approx(math.sqrt(total_d / total_w), rel=1e-6)
    assert {t.rank_bound for t in diff.tensors} == {None, 4}


def test_rslora_and_patterns_scale_as_peft_does(tmp_path):
    folder = save_tiny_adapter(
        tmp_path / "rs", BASE, r=4, alpha=8, use_rslora=True, targets=("q_proj", "o_proj"),
        alpha_pattern={"o_proj": 2.0}, seed=2,
    )  # fmt: skip
    cfg = read_adapter_config(folder)
    assert cfg.scale_for("model.layers.0.self_attn.q_proj") == (4, 4.0)  # 8 / sqrt(4)
    assert cfg.scale_for("model.layers.0.self_attn.o_proj") == (4, 1.0)
    diff = compare_weights(BASE, str(folder), progress=False)
    _check_figures(diff, _base_tensors(), _hand_deltas(folder))


def test_the_merged_model_is_the_float64_update(adapter):
    merged = load_hf_model(str(adapter)).state_dict()
    base = _base_tensors()
    for name, d in _hand_deltas(adapter).items():
        expected = base[name].double() + d
        assert torch.allclose(merged[name].double(), expected, atol=1e-6, rtol=0)


def test_three_way_cosine_with_a_full_child(adapter):
    fam = compare_children(BASE, {"rl": str(adapter), "sft": "organism:sft"}, progress=False)
    base, sft, deltas = _base_tensors(), _base_tensors("organism:sft"), _hand_deltas(adapter)
    cosines = fam.cosines["rl_sft"]
    for name, d in deltas.items():
        other = (sft[name].float() - base[name].float()).double()
        expected = float((d * other).sum() / (d.norm() * other.norm()))
        assert cosines[name] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    untouched = [n for n in cosines if n not in deltas]
    assert untouched and all(cosines[n] is None for n in untouched)
    full = compare_weights(BASE, "organism:sft", progress=False)
    assert fam["sft"].summary().rel_norm == full.summary().rel_norm


def test_gpt2_conv1d_and_embedding_layers_are_transposed(tmp_path, tiny_dirs):
    gpt2 = str(tiny_dirs["gpt2"])
    folder = save_tiny_adapter(tmp_path / "g", gpt2, r=2, alpha=4, targets=("c_attn",), seed=3)
    assert read_adapter_config(folder).fan_in_fan_out  # peft sets it for Conv1D
    _check_figures(compare_weights(gpt2, str(folder), progress=False), _base_tensors(gpt2),
                   _hand_deltas(folder, transposed=True))  # fmt: skip
    llama = str(tiny_dirs["llama"])
    folder = save_tiny_adapter(tmp_path / "e", llama, r=2, targets=("embed_tokens", "up_proj"))
    diff = compare_weights(llama, str(folder), WeightDiffConfig(rank=True), progress=False)
    _check_figures(diff, _base_tensors(llama), _hand_deltas(folder))
    for t in diff.tensors:  # the measured rank of each LoRA update is r (random factors)
        if t.rank_bound:
            assert round(t.effective_rank * min(t.shape)) == t.rank_bound == 2


def _peft_logits(base: str, folder, ids: torch.Tensor) -> torch.Tensor:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_hf_model(base), str(folder)).eval()
    with torch.no_grad():
        return model(ids).logits  # unmerged: x Wᵀ + scale · (x Aᵀ) Bᵀ


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_adapted_logits_match_an_unmerged_peft_forward(adapter, backend):
    pair = ModelPair.load(BASE, str(adapter), backend=backend)
    batch = pair.tokenize(["Q: 347 + 285 = ?\n"])
    expected = _peft_logits(BASE, adapter, batch.input_ids)
    got = pair.run("post", batch.input_ids).logits
    torch.testing.assert_close(got.float(), expected, atol=1e-4, rtol=1e-4)
    base = pair.run("base", batch.input_ids).logits
    assert (base - expected).abs().max() > 1e-2  # the adapter does change the outputs


def test_family_with_an_adapter_child_runs_forks_and_weights(adapter):
    fam = pl.load(BASE, rl=str(adapter))
    seqs = fam.sample(["Q: 12 + 34 = ?\n"], pl.SampleConfig(n=2, max_new_tokens=16))
    forks = fam.forks(seqs)
    assert 0 <= forks["rl"].summary().agreement <= 1
    assert fam.weights(progress=False)["rl"].summary().rel_norm > 0


def test_an_adapter_of_another_base_is_refused(adapter):
    message = f"adapter {adapter}: trained on base '{resolve_spec(BASE).location}'"
    with pytest.raises(SpecError, match="but the base given is 'organism:sft'") as err:
        compare_weights("organism:sft", str(adapter), progress=False)
    assert str(err.value).startswith(message)
    with pytest.raises(SpecError, match="but the base given is 'organism:sft'"):
        load_hf_model(str(adapter), base=resolve_spec("organism:sft"))


def test_an_adapter_naming_no_base_takes_the_one_given(tmp_path, adapter):
    folder = save_tiny_adapter(tmp_path / "n", BASE, r=4, alpha=8, seed=1, base_name=None)
    assert read_adapter_config(folder).base_name is None
    diff = compare_weights(BASE, str(folder), progress=False)
    assert diff.summary() == pytest.approx(diff.summary())  # computed
    assert diff.summary().rel_norm == compare_weights(BASE, str(adapter)).summary().rel_norm
    model = load_hf_model(str(folder), base=resolve_spec(BASE))
    assert model.config.num_hidden_layers == 4
    with pytest.raises(SpecError, match="names no base"):
        load_hf_model(str(folder))


def test_target_modules_the_base_lacks_are_named(tmp_path, tiny_dirs):
    folder = save_tiny_adapter(
        tmp_path / "g", str(tiny_dirs["gpt2"]), targets=("c_attn",), base_name=None
    )
    with pytest.raises(SpecError, match=r"targets modules the base does not have \(transformer"):
        compare_weights(BASE, str(folder), progress=False)
    with pytest.raises(SpecError, match="targets modules the base does not have"):
        load_hf_model(str(folder), base=resolve_spec(BASE))


def test_dora_is_refused_by_name(tmp_path):
    folder = save_tiny_adapter(tmp_path / "d", BASE, use_dora=True)
    assert resolve_spec(str(folder)).kind == "adapter"
    with pytest.raises(NotSupportedError, match=r"DoRA \(use_dora\) is not supported"):
        compare_weights(BASE, str(folder), progress=False)
    with pytest.raises(NotSupportedError, match="DoRA"):
        load_hf_model(str(folder))


def test_a_bin_adapter_is_read_with_weights_only(tmp_path, adapter):
    import shutil

    folder = tmp_path / "bin"
    shutil.copytree(adapter, folder)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    (folder / "adapter_model.safetensors").unlink()
    torch.save(tensors, folder / "adapter_model.bin")
    got = compare_weights(BASE, str(folder), progress=False).summary().rel_norm
    assert got == compare_weights(BASE, str(adapter), progress=False).summary().rel_norm


def test_without_peft_the_error_says_what_to_install(adapter, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(NotSupportedError, match=r"pip install 'postlens\[adapters\]'"):
        load_hf_model(str(adapter), LoadOptions())
    assert compare_weights(BASE, str(adapter), progress=False).summary().rel_norm > 0
