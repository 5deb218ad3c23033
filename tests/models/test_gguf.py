"""GGUF checkpoints as specs: resolution, loading, streamed weights, and bad files.

The GGUF files are written here from tiny Llama models (`postlens.testing.save_tiny_gguf`, which
lays tensors out as llama.cpp's converter does). References are independent: the float model
the file was written from, transformers' own GGUF loader, and a planted change.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import postlens as pl
from postlens.cli import app
from postlens.errors import CheckpointError, NotSupportedError, SpecError
from postlens.models.gguf import GGUFTensors, gguf_info
from postlens.models.specs import resolve_spec
from postlens.testing import save_model, save_tiny_gguf, tiny_model

PLANTED = "model.layers.1.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A float model as safetensors and as GGUF (F32, Q8_0), and a Q8_0 child with a planted
    change in block 1's MLP output projection."""
    root = tmp_path_factory.mktemp("gguf")
    model, tok = tiny_model("llama", seed=0)
    reference = tiny_model("llama", seed=0)[0]
    out = {
        "model": reference,
        "hf": save_model(model, tok, root / "hf"),
        "f32": save_tiny_gguf(root / "f32" / "tiny-f32.gguf", model, tok, qtype="F32"),
        "q8": save_tiny_gguf(root / "q8" / "tiny-q8_0.gguf", model, tok),
    }
    with torch.no_grad():
        model.get_parameter(PLANTED).add_(0.25)
    out["child"] = save_tiny_gguf(root / "child" / "tiny-q8_0.gguf", model, tok)
    return out


def test_a_gguf_file_or_its_folder_is_a_spec(files, tmp_path):
    by_file, by_folder = resolve_spec(files["q8"]), resolve_spec(files["q8"].parent)
    assert by_file.kind == by_folder.kind == "gguf"
    assert by_file.gguf_path == by_folder.gguf_path == files["q8"].resolve()
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        (two / name).write_bytes(files["q8"].read_bytes())
    with pytest.raises(CheckpointError, match="2 GGUF files"):
        resolve_spec(two)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SpecError, match="or a .gguf file"):
        resolve_spec(tmp_path / "notes.txt")


def test_the_header_says_what_it_was_quantized_to(files):
    info = gguf_info(files["q8"])
    assert (info.architecture, info.file_type) == ("llama", "MOSTLY_Q8_0")
    assert info.n_params == sum(p.numel() for p in tiny_model("llama")[0].parameters())
    assert info.describe().startswith("GGUF llama, dequantized from Q8_0 (16 tensors), F32 (5)")


def test_an_f32_gguf_loads_as_exactly_the_model_it_was_written_from(files):
    fam = pl.load(str(files["f32"]), post=str(files["q8"]))
    batch = fam.pair.tokenize(["q: 12 + 34 = ? a: 46", "hello"])
    with torch.no_grad():
        expected = files["model"](batch.input_ids, attention_mask=batch.attention_mask).logits
    # names mapped and query/key rows un-permuted: the very same function
    assert torch.equal(fam.pair.run("base", batch).logits, expected)


def test_a_quantized_gguf_loads_as_transformers_dequantizes_it(files):
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(
        files["q8"].parent, gguf_file=files["q8"].name, dtype=torch.float32
    )
    fam = pl.load(str(files["q8"]), post=str(files["child"]))
    for name, value in reference.state_dict().items():
        assert torch.equal(fam.pair.base.hf_model.state_dict()[name], value), name


def test_gguf_tensors_stream_under_transformers_names(files):
    from safetensors.torch import load_file

    dense = load_file(files["hf"] / "model.safetensors")
    tensors = GGUFTensors(files["f32"])
    assert set(tensors.names()) == set(dense)
    for name in tensors.names():
        assert torch.equal(tensors.get(name), dense[name]), name
        assert tensors.shapes()[name] == tuple(dense[name].shape)


def test_weights_compare_a_gguf_child_with_its_gguf_base(files):
    diff = pl.compare_weights(str(files["q8"]), str(files["child"]), progress=False)
    changed = [t.name for t in diff.tensors if t.rel_norm > 0]
    assert changed == [PLANTED]  # quantization is deterministic: untouched tensors agree exactly


def test_weights_compare_a_gguf_with_safetensors(files):
    diff = pl.compare_weights(str(files["hf"]), str(files["f32"]), progress=False)
    assert diff.summary().rel_norm == 0.0 and not diff.missing_in_base and not diff.missing_in_post
    quantized = pl.compare_weights(str(files["hf"]), str(files["q8"]), progress=False)
    assert 0 < quantized.summary().rel_norm < 0.02  # Q8_0's rounding, nothing else


def test_info_names_the_quantization(files, tmp_path):
    out = tmp_path / "info.json"
    command = ["info", str(files["q8"]), str(files["child"]), "--json", str(out)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "dequantized" in result.output and "Converting" not in result.output  # no stray bar
    info = json.loads(out.read_text())
    assert info["post"]["source"].startswith("GGUF llama, dequantized from Q8_0")


def _one_line_error(result, *needles):
    assert (
        result.exit_code != 0
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    ), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_a_truncated_gguf_is_named_in_one_line(files, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(files["q8"].read_bytes()[:5000])
    for command in (
        ["info", str(broken), str(files["q8"])],
        ["weights", str(broken), str(files["q8"])],
    ):
        _one_line_error(CliRunner().invoke(app, command), "broken.gguf", "not a readable GGUF")


def test_an_architecture_transformers_cannot_read_is_named(files, tmp_path):
    import gguf

    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), "mamba-x")
    writer.add_tensor("token_embd.weight", torch.zeros(4, 32).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(NotSupportedError, match="mamba-x"):
        pl.load(str(odd), post=str(files["q8"]))


def test_a_tensor_the_gguf_package_cannot_dequantize_is_named(tmp_path):
    model, tok = tiny_model("llama", seed=0)
    path = save_tiny_gguf(tmp_path / "f64" / "m.gguf", model.double(), tok, qtype="F32")
    assert "F64" in gguf_info(path).tensor_types
    with pytest.raises(CheckpointError, match="stored as F64, which the gguf package cannot"):
        GGUFTensors(path).get("model.norm.weight")


def test_without_the_extra_the_error_says_how_to_install_it(files, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now raises ImportError
    with pytest.raises(NotSupportedError, match=r"pip install 'postlens\[gguf\]'"):
        gguf_info(files["q8"])


def test_weights_json_of_a_gguf_pair_loads_back(files, tmp_path):
    out = tmp_path / "w.json"
    result = CliRunner().invoke(
        app, ["weights", str(files["q8"]), str(files["child"]), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    back = pl.load_result(json.loads(out.read_text()))
    assert [t.name for t in back.children["post"].tensors if t.rel_norm > 0] == [PLANTED]


def test_a_gguf_pair_runs_on_transformer_bridge_as_on_nnsight(files):
    batch = None
    logits = {}
    for backend in ("nnsight", "transformer_lens"):
        pair = pl.load(str(files["q8"]), post=str(files["child"]), backend=backend).pair
        batch = batch or pair.tokenize(["q: 12 + 34 = ? a: 46", "hello"])
        logits[backend] = pair.run("post", batch).logits
    torch.testing.assert_close(logits["nnsight"], logits["transformer_lens"], atol=1e-4, rtol=1e-4)


def test_a_loaded_gguf_model_is_dense_and_saves_as_safetensors(files, tmp_path):
    from transformers import AutoModelForCausalLM

    from postlens.models.loading import load_hf_model

    model = load_hf_model(str(files["q8"]))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    model.save_pretrained(tmp_path / "dense")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "dense")
    for name, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


def test_an_adapter_naming_a_gguf_file_matches_that_base_wherever_it_is(files, tmp_path):
    from postlens.models.adapters import check_adapter_base

    folder = tmp_path / "adapter"
    folder.mkdir()
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
              "base_model_name_or_path": files["q8"].name}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    adapter = resolve_spec(str(folder))
    check_adapter_base(adapter, resolve_spec(str(files["q8"])))  # by file name: no error
    with pytest.raises(SpecError, match="trained on base 'tiny-q8_0.gguf'"):
        check_adapter_base(adapter, resolve_spec(str(files["f32"])))


def test_one_load_parses_the_header_once_and_a_changed_file_is_parsed_again(files, tmp_path):
    """transformers asks for the header for the config, the tokenizer and the weights; they
    share one parse, and a file rewritten in place is never read through a stale parse."""
    import shutil

    from gguf.gguf_reader import GGUFReader

    path = tmp_path / "copy" / files["q8"].name
    path.parent.mkdir()
    shutil.copy(files["q8"], path)
    calls = []
    original = GGUFReader.__init__

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        original(self, *args, **kwargs)

    GGUFReader.__init__ = counting
    try:
        pl.load(str(path), children={"child": str(files["child"])})
        assert [str(p) for p in calls].count(str(path.resolve())) == 1
        shutil.copy(files["f32"], path)  # another size and time: parsed afresh
        assert gguf_info(path).tensor_types.keys() == {"F32"}
    finally:
        GGUFReader.__init__ = original


def test_an_adapter_child_is_merged_into_a_copy_of_the_loaded_base(files, tmp_path):
    """The same weights as loading its base again, and the base itself left untouched."""
    from postlens.models.loading import LoadOptions, load_hf_model
    from postlens.testing import save_tiny_adapter

    folder = save_tiny_adapter(tmp_path / "adapter", str(files["hf"]), seed=0)
    base_spec, adapter_spec = resolve_spec(str(files["hf"])), resolve_spec(str(folder))
    base = load_hf_model(base_spec)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    reused = load_hf_model(adapter_spec, LoadOptions(), base_spec, base)
    fresh = load_hf_model(adapter_spec, LoadOptions(), base_spec)
    for name, value in fresh.state_dict().items():
        assert torch.equal(reused.state_dict()[name], value), name
        assert torch.equal(base.state_dict()[name], before[name]), name
    assert any(not torch.equal(fresh.state_dict()[k], before[k]) for k in before)


def test_a_gguf_model_is_fingerprinted_by_its_files_sha256(files):
    """Provenance (the report's fingerprint, a crosscoder's) names the GGUF file's SHA-256."""
    import hashlib

    from postlens.models.hashes import location_hashes
    from postlens.reporting.run import fingerprint

    want = {files["q8"].name: hashlib.sha256(files["q8"].read_bytes()).hexdigest()}
    assert fingerprint(resolve_spec(str(files["q8"])))["files"] == want
    assert location_hashes(str(files["q8"].parent)) == want == location_hashes(str(files["q8"]))
    assert location_hashes(str(files["q8"].parent / "missing")) == {}
