"""--dtype, --device, --chat-template, --prompt-field / --completion-field on every command."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import postlens as pl
from postlens.cli import app
from postlens.data.inputs import prompt_records
from postlens.errors import ConfigError
from postlens.models.dtypes import default_dtype, storage_dtype
from postlens.models.specs import resolve_spec
from postlens.testing import save_model, tiny_model

runner = CliRunner()
COMMANDS = [
    ["info"],
    ["weights"],
    ["forks"],
    ["activations"],
    ["passk", "organism:base", "organism:rl"],
    ["personas"],
    ["report", "--demo", "--out", "never.html"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_unknown_dtype_is_one_line_before_loading(command, tmp_path):
    result = runner.invoke(app, [*command, "--dtype", "float13"])
    assert result.exit_code == 2, result.output
    assert "dtype must be float32, bfloat16 or float16, got 'float13'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "never.html").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_gpu_is_one_line(command):
    result = runner.invoke(app, [*command, "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "no CUDA GPU is available here" in result.output


@pytest.fixture(scope="module")
def bf16_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=0)
    return save_model(model.to(torch.bfloat16), tok, tmp_path_factory.mktemp("bf16") / "m")


def test_a_float32_adapter_does_not_lift_its_bf16_base_to_float32(bf16_dir, tmp_path):
    from postlens.testing import save_tiny_adapter

    adapter = save_tiny_adapter(tmp_path / "lora", str(bf16_dir), seed=0)
    assert storage_dtype(resolve_spec(str(adapter))) == "float32"  # peft saved its factors so
    specs = [resolve_spec(str(bf16_dir)), resolve_spec(str(adapter))]
    assert default_dtype(specs) == "bfloat16"


def test_default_dtype_is_the_checkpoints_16_bit_dtype(bf16_dir, tiny_dirs):
    assert storage_dtype(resolve_spec(str(bf16_dir))) == "bfloat16"
    assert default_dtype([resolve_spec(str(bf16_dir))]) == "bfloat16"
    assert default_dtype([resolve_spec(str(bf16_dir)), resolve_spec(str(tiny_dirs["llama"]))]) == (
        "float32"
    )
    fam = pl.load(str(bf16_dir), str(bf16_dir))
    assert next(fam.base.hf_model.parameters()).dtype == torch.bfloat16
    # Statistics are float32 (and exact: identical models) whatever the compute dtype.
    s = fam.forks([("abc", " de.")])["post"].summary()
    assert s.agreement == 1.0 and s.mean_kl == 0.0
    acts = fam.activations([("abc", " de.")])["post"]
    assert acts.output_kl == 0.0 and acts.layers[-1].cosine_mean == pytest.approx(1.0)
    fam32 = pl.load(str(bf16_dir), str(bf16_dir), dtype="float32")
    assert next(fam32.base.hf_model.parameters()).dtype == torch.float32


def test_device_auto_uses_accelerate(tiny_dirs, monkeypatch):
    import postlens.pair as pair_module

    seen = []
    real = pair_module.LoadOptions
    monkeypatch.setattr(pair_module, "LoadOptions", lambda *a: seen.append(a) or real(*a))
    path = str(tiny_dirs["llama"])
    fam = pl.load(path, path, device="auto")
    assert seen[0][0] is None and seen[0][2] == "auto"  # device_map="auto", no device
    assert next(fam.base.hf_model.parameters()).device.type == "cpu"  # no GPU here


def test_forks_cli_reads_dataset_fields_and_chat_template_none(tiny_dirs, tmp_path):
    path = str(tiny_dirs["llama"])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"question": "ab", "reply": " cd."}) + "\n")
    out = tmp_path / "forks.json"
    args = ["forks", path, path, "--prompts", str(prompts), "--prompt-field", "question",
            "--completion-field", "reply", "--chat-template", "none", "--dtype", "bfloat16",
            "--device", "cpu", "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["summary"]["n_positions"] == 4 and data["summary"]["agreement"] == 1.0


def test_chat_template_of_a_tokenizer_without_one_is_refused(tiny_dirs):
    path = str(tiny_dirs["llama"])
    result = runner.invoke(app, ["info", path, path, "--chat-template", "post"])
    assert result.exit_code == 2 and "has no chat template" in result.output


def test_prompt_records_refuses_a_limit_below_one():
    with pytest.raises(ConfigError, match="limit must be at least 1, got 0"):
        prompt_records(["a"], limit=0)
