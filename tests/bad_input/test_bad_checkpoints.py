"""Checkpoints that do not match their config are refused, in one line, before any compute."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from bad_inputs import BROKEN_CHECKPOINTS, break_checkpoint, leftovers
from typer.testing import CliRunner

from postlens.cli import app
from postlens.errors import CheckpointError
from postlens.models.loading import check_model_folder, load_hf_model, quiet_transformers
from postlens.models.loading_info import check_loading_info
from postlens.pair import ModelPair
from postlens.testing import save_tiny_model

runner = CliRunner()


@pytest.mark.parametrize("name", sorted(BROKEN_CHECKPOINTS))
def test_load_refuses_broken_checkpoint(broken_dirs, name):
    folder = broken_dirs[name]
    with pytest.raises(CheckpointError) as err:
        load_hf_model(str(folder))
    message = str(err.value)
    assert str(folder) in message
    assert BROKEN_CHECKPOINTS[name][1] in message
    assert "\n" not in message


def test_pair_refuses_broken_post(tiny_dirs, broken_dirs):
    with pytest.raises(CheckpointError, match=r"wrong_shape: .*model\.norm\.weight is \[31\]"):
        ModelPair.load(str(tiny_dirs["llama"]), str(broken_dirs["wrong_shape"]), backend="nnsight")


@pytest.mark.parametrize("name", ["missing", "wrong_shape"])
def test_info_cli_is_one_line_and_writes_nothing(tiny_dirs, broken_dirs, tmp_path, name):
    out = tmp_path / "out" / "info.json"
    args = ["info", str(tiny_dirs["llama"]), str(broken_dirs[name]), "--json", str(out)]
    result = runner.invoke(app, [*args, "--backend", "nnsight"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("postlens: error: ")
    assert str(broken_dirs[name]) in lines[0] and BROKEN_CHECKPOINTS[name][1] in lines[0]
    assert "Traceback" not in result.output and "LOAD REPORT" not in result.output
    assert not out.parent.exists() or leftovers(out.parent) == []


@pytest.mark.parametrize(
    "spec, overrides",
    [
        ("organism:base", None),
        ("organism:rl", None),
        ("gpt2", {}),
        ("llama", {}),
        ("llama-tied", {"tie_word_embeddings": True}),
    ],
)
def test_valid_checkpoints_still_load(tmp_path, spec, overrides):
    """Tied heads and non-persistent buffers (rotary inv_freq) are not 'missing'."""
    if overrides is not None:
        spec = str(save_tiny_model(tmp_path / spec, arch=spec.split("-")[0], **overrides))
    model = load_hf_model(spec)
    assert not model.training


def test_legacy_gpt2_buffer_is_not_unexpected():
    check_loading_info("ckpt", {"unexpected_keys": {"transformer.h.0.attn.masked_bias"}})


def test_many_names_are_counted():
    keys = {f"model.layers.{i}.weight" for i in range(12)}
    with pytest.raises(CheckpointError, match=r"12 tensors unexpected \(.*and 7 more\)$"):
        check_loading_info("ckpt", {"unexpected_keys": keys})


def test_loads_are_quiet_and_restore_transformers_settings(tiny_dirs, broken_dirs, capfd):
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    load_hf_model(str(tiny_dirs["gpt2"]))
    with pytest.raises(CheckpointError):
        load_hf_model(str(broken_dirs["missing"]))
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err and "LOAD REPORT" not in captured.err
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == (level, bars)


def test_verbose_transformers_is_left_alone():
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    try:
        with quiet_transformers():
            assert hf_logging.get_verbosity() == logging.INFO
    finally:
        hf_logging.set_verbosity(old)


class _Code:
    """What an untrusted pickle may carry: a call, run on unpickling."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_pickled_checkpoint_with_code_is_refused_naming_the_file(tiny_dirs, tmp_path, capsys):
    import shutil

    import torch
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from postlens.cli import app

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_dirs["llama"], folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**state, "payload": _Code()}, folder / "pytorch_model.bin")
    result = CliRunner().invoke(app, ["info", str(folder), str(folder)])
    assert result.exit_code == 2, result.output
    assert "pytorch_model.bin: refused: the checkpoint holds pickled code" in result.output
    assert "unpickled!" not in result.output + capsys.readouterr().out


@pytest.fixture(scope="module")
def nan_family(tiny_dirs, tmp_path_factory):
    """The tiny llama and a copy whose final norm turned NaN in memory: a checkpoint holding
    it is refused at load (below); the analyses still guard against such a model."""
    import torch

    import postlens as pl

    def nan_norm(state: dict) -> None:
        state["model.norm.weight"] = torch.full_like(state["model.norm.weight"], float("nan"))

    folder = break_checkpoint(tiny_dirs["llama"], tmp_path_factory.mktemp("nan") / "m", nan_norm)
    with pytest.raises(pl.CheckpointError, match="non-finite weights in model.norm.weight"):
        pl.load(str(tiny_dirs["llama"]), post=str(folder))
    family = pl.load(str(tiny_dirs["llama"]), post=str(tiny_dirs["llama"]))
    with torch.no_grad():
        family.pair.post.hf_model.model.norm.weight.fill_(float("nan"))
    return family


def test_non_finite_logits_are_refused_with_the_position(nan_family):
    import postlens as pl

    with pytest.raises(
        pl.PostlensError,
        match="post model's logits are not finite at sequence 0, completion token 0",
    ):
        nan_family.forks([("q: 1+2=?", " 3")])


def test_non_finite_activations_are_refused(nan_family):
    import postlens as pl

    with pytest.raises(
        pl.PostlensError, match="output KL is not finite in the batch of sequences 0"
    ):
        nan_family.activations([("q: 1+2=?", " 3")], pl.ActivationConfig(patching="exact"))


def test_a_model_folder_without_a_tokenizer_is_refused_at_load(tmp_path):
    import os

    from typer.testing import CliRunner

    from postlens.cli import app
    from postlens.testing import save_tiny_model

    base = save_tiny_model(tmp_path / "base", "llama")
    child = save_tiny_model(tmp_path / "child", "llama", seed=1)
    for name in os.listdir(child):
        if "token" in name or name in ("vocab.json", "merges.txt"):
            os.remove(child / name)
    result = CliRunner().invoke(app, ["info", str(base), str(child)])
    assert result.exit_code == 2, result.output
    assert f"{child}: no tokenizer files" in " ".join(result.output.split())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_weight_is_named_at_load_not_a_sampling_traceback(tmp_path, value):
    import torch
    from typer.testing import CliRunner

    from postlens.cli import app
    from postlens.testing import save_model, tiny_model

    base, tok = tiny_model("llama")
    child, _ = tiny_model("llama", seed=1)
    with torch.no_grad():
        child.model.layers[1].mlp.up_proj.weight[0, 0] = value
    paths = [str(save_model(m, tok, tmp_path / n)) for m, n in ((base, "b"), (child, "c"))]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "ab"}\n')
    runner = CliRunner()
    result = runner.invoke(app, ["forks", *paths, "--prompts", str(prompts)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    one_line = " ".join(result.output.split())
    assert "non-finite weights in model.layers.1.mlp.up_proj.weight (1 NaN or ±inf" in one_line
    weights = runner.invoke(app, ["weights", *paths])  # streamed: counted, not refused
    assert weights.exit_code == 1 and "non-finite weights" in weights.output


def test_a_nan_in_a_lora_factor_is_named_at_load(tmp_path):
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from postlens.cli import app
    from postlens.testing import save_tiny_adapter

    adapter = save_tiny_adapter(tmp_path / "adapter")
    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    name = next(k for k in sorted(tensors) if "lora_B" in k)
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(weights))
    result = CliRunner().invoke(app, ["activations", "organism:base", str(adapter)])
    assert result.exit_code == 2 and "non-finite weights" in " ".join(result.output.split())


def test_same_vocabulary_different_merges_is_not_called_identical():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from postlens.models.compat import compare_tokenizers

    vocab = {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "</s>": 5}

    def bpe(merges):
        fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab, merges)))
        fast.eos_token = "</s>"
        return fast

    first, second = bpe([("a", "b")]), bpe([("b", "c")])
    assert first("abc").input_ids != second("abc").input_ids  # [ab, c] vs [a, bc]
    tokens, refusals = compare_tokenizers(first, second)
    assert refusals == [] and not tokens.identical and tokens.segmentation == ["merges"]
    assert "tokenization differs (merges)" in tokens.describe()
    same, _ = compare_tokenizers(first, bpe([("a", "b")]))
    assert same.identical and same.segmentation == []


@pytest.mark.parametrize("layers", [1, 3])
def test_a_config_whose_layer_count_disagrees_is_one_line(tmp_path, layers):
    import json

    from typer.testing import CliRunner

    from postlens.cli import app
    from postlens.testing import save_tiny_model

    base = save_tiny_model(tmp_path / "b", "qwen2")
    child = save_tiny_model(tmp_path / "c", "qwen2", seed=1)
    config = json.loads((child / "config.json").read_text())
    config["num_hidden_layers"] = layers  # its layer_types still lists 2
    (child / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(app, ["info", str(base), str(child)])
    assert result.exit_code == 2, result.output
    assert "must be equal to the number of `layer_types`" in " ".join(result.output.split())


def _float32_pair(tmp_path, odd):
    """A float32 base and a child equal to it except one tensor stored as `odd`."""
    import json

    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    base = {f"model.layers.{i}.mlp.down_proj.weight": torch.randn(6, 6, generator=g)
            for i in range(3)}  # fmt: skip
    post = dict(base)
    name = "model.layers.1.mlp.down_proj.weight"
    post[name] = (base[name] * 20).to(odd)
    folders = []
    for label, state in (("base", base), ("post", post)):
        (tmp_path / label).mkdir()
        save_file(state, str(tmp_path / label / "model.safetensors"))
        (tmp_path / label / "config.json").write_text(json.dumps({"model_type": "llama"}))
        folders.append(str(tmp_path / label))
    return *folders, name


def test_an_int8_tensor_in_a_float32_checkpoint_is_not_compared(tmp_path):
    """Integer entries are quantized codes without their scale: a relative norm of them against
    real weights would be a wrong answer, so the tensor is a mismatch (exit 1), named."""
    import torch

    base, post, name = _float32_pair(tmp_path, torch.int8)
    result = runner.invoke(app, ["weights", base, post])
    assert result.exit_code == 1, result.output
    assert f"{name}: base float32 vs post int8 (not comparable)" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    from postlens.diffs.weights.compare import compare_weights

    diff = compare_weights(base, post, progress=False)
    assert name not in {t.name for t in diff.tensors} and diff.summary().rel_norm == 0.0


def test_a_float16_tensor_in_a_float32_checkpoint_is_named(tmp_path):
    """A float16 tensor among float32 ones is compared (upcast exactly), and named: its
    changed share is counted at float16's resolution, not the file's."""
    import torch

    base, post, name = _float32_pair(tmp_path, torch.float16)
    from postlens.diffs.weights.compare import compare_weights

    diff = compare_weights(base, post, progress=False)
    assert diff.odd_dtypes == [f"{name}: float32 → float16"] and diff.ok
    assert diff.summary().storage == "float32 → mixed"
    assert type(diff).from_json(diff.to_json()).odd_dtypes == diff.odd_dtypes
    result = runner.invoke(app, ["weights", base, post])
    assert result.exit_code == 0, result.output
    assert "stored in another dtype than the rest" in result.output


def test_an_int8_weight_is_refused_at_load_not_cast_into_a_wrong_model(tmp_path):
    """transformers would cast the int8 codes into the float parameter: a model that runs and
    is wrong. Loading refuses, naming the file and the tensor."""
    import torch

    _, post, name = _float32_pair(tmp_path, torch.int8)
    with pytest.raises(
        CheckpointError, match=rf"model\.safetensors: {name} \(I8\) stored as integers"
    ):
        check_model_folder(Path(post))


def test_a_tokenizer_with_ids_past_the_embedding_is_refused_at_load(tmp_path):
    """A tokenizer saved from another model (more ids than embedding rows) used to end in an
    IndexError inside torch at the first forward; it is one line at load, naming the folder."""
    from postlens.errors import IncompatibleModelsError
    from postlens.testing import build_tokenizer, save_tiny_model

    folder = save_tiny_model(tmp_path / "m")
    build_tokenizer(extra_tokens=tuple(f"tok{i}" for i in range(200))).save_pretrained(folder)
    with pytest.raises(IncompatibleModelsError, match=r"m: its tokenizer has \d+ ids but the "
                                                      r"model's embedding has \d+ rows"):  # fmt: skip
        ModelPair.load(str(folder), str(folder))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "ab", "completion": "cd"}\n')
    result = runner.invoke(app, ["forks", str(folder), str(folder), "--prompts", str(prompts)])
    assert result.exit_code == 2 and "embedding has" in result.output, result.output
