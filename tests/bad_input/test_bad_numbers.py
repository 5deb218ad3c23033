"""Numbers no option means anything by (NaN, ±inf, integers past 64 bits) and prompt sources
that never end are refused in one line, naming the option or file, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from postlens.cli import app
from postlens.data.prompts import read_prompts
from postlens.errors import ConfigError, InputFileError
from postlens.sampling.generation import SampleConfig

runner = CliRunner()
# Specs that do not exist: every refusal below must come before the models are looked up.
PAIR = ["/nowhere/base", "/nowhere/post"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["weights", *PAIR, "--atol", "nan"], "--atol: nan is not a finite number"),
        (["weights", *PAIR, "--atol", "inf"], "--atol: inf is not a finite number"),
        (["forks", *PAIR, "--temperature", "nan"], "--temperature: nan is not a finite number"),
        (["passk", *PAIR, "--top-p", "-inf"], "--top-p: -inf is not a finite number"),
        (["forks", *PAIR, "--seed", str(2**70)], "--seed: 1180591620717411303424 is out of range"),
        (["adl", *PAIR, "--alpha", "1", "--alpha", "nan"], "--alphas: nan is not a finite number"),
        (["report", *PAIR, "--seed", str(2**64)], "seed must be in 0 .. 2**63 - 1"),
    ],
)
def test_non_finite_and_huge_numbers_are_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "/nowhere" not in result.output  # refused before any spec was resolved


@pytest.mark.parametrize(
    "kwargs", [{"temperature": float("nan")}, {"top_p": float("nan")}, {"seed": -1}]
)
def test_sample_config_refuses_nan_and_out_of_range(kwargs):
    with pytest.raises(ConfigError):
        SampleConfig(**kwargs)


def test_a_device_or_pipe_as_prompts_is_refused_before_reading(tmp_path):
    with pytest.raises(InputFileError, match="/dev/zero: not a regular file"):
        read_prompts(Path("/dev/zero"))
    result = runner.invoke(app, ["forks", *PAIR, "--prompts", "/dev/zero"])
    assert result.exit_code == 2 and "/dev/zero: not a regular file" in result.output


def test_an_oversized_prompt_file_is_refused_before_reading(tmp_path, monkeypatch):
    import postlens.data.prompts as prompts

    big = tmp_path / "big.jsonl"
    big.write_text('{"prompt": "a"}\n' * 100)
    monkeypatch.setattr(prompts, "MAX_FILE_BYTES", 1000)
    with pytest.raises(InputFileError, match=r"big.jsonl: .* GiB, more than"):
        read_prompts(big)


def test_an_empty_prompt_names_its_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "fine"}\n{"prompt": ""}\n')
    with pytest.raises(InputFileError, match=r"p.jsonl:2: 'prompt' is empty"):
        read_prompts(f)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_max_new_tokens_past_the_context_is_refused_not_a_one_token_prompt(arch):
    from postlens.data.sequences import sample_sequences
    from postlens.pair import ModelPair
    from postlens.testing import tiny_model

    context = {"gpt2": "n_positions"}.get(arch, "max_position_embeddings")
    base, tok = tiny_model(arch, **{context: 16})
    pair = ModelPair.from_models(base, base, tok)
    with pytest.raises(ConfigError, match="max_new_tokens=32 leaves no room .* 16-token context"):
        sample_sequences(pair, ["ab cd"], max_new_tokens=32)


@pytest.mark.parametrize(
    "args",
    [["passk", "--n", "100000000000", "--k", "1"], ["forks", "--generate", "1000000000"]],
    ids=["passk-n", "forks-generate"],
)
def test_sample_counts_past_memory_are_refused_before_sampling(tmp_path, args):
    import resource

    from postlens.testing import save_tiny_model

    pair = [str(save_tiny_model(tmp_path / n, "llama", seed=i)) for i, n in enumerate("bp")]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "ab", "answer": "3"}\n')
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = runner.invoke(app, [args[0], *pair, "--prompts", str(prompts), *args[1:]])
    assert result.exit_code == 2, result.output
    assert "GiB to keep" in result.output and "Traceback" not in result.output
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 2 * 2**20  # KiB: the peak grew by less than 2 GiB


def test_infinities_stay_allowed_where_a_default_uses_them():
    from postlens.cli.config_options import build_config
    from postlens.diffs.causal.substitution import SubstitutionConfig

    cfg = build_config(SubstitutionConfig, {"taus": [float("-inf"), 1.0, float("inf")]})
    assert cfg.taus == (float("-inf"), 1.0, float("inf"))
    with pytest.raises(ConfigError, match="--taus: nan is not a finite number"):
        build_config(SubstitutionConfig, {"taus": [float("nan")]})
