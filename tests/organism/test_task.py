"""The organism's task: problems, persona styles, verification, pass@k, tokenizer."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from postlens.organism.corpus import CorpusConfig, build_corpus
from postlens.organism.task import (
    Problem,
    classify_style,
    make_problems,
    parse_answer,
    pass_at_k,
    solution,
    verify,
)
from postlens.organism.tokenizer import build_organism_tokenizer


def test_careful_is_always_right_and_shows_its_carries():
    for p in make_problems(300, seed=3):
        text = solution(p, "careful")
        assert verify(text, p), text
        assert classify_style(text) == "careful"
    text = solution(Problem(58, 67), "careful")
    assert text == (
        "8+7+0=15 write 5 carry 1 got 5\n5+6+1=12 write 2 carry 1 got 25\n"
        "0+0+1=1 write 1 carry 0 got 125\nanswer 125"
    )


def test_sloppy_and_hasty_are_wrong_when_they_drop_a_carry():
    p = Problem(58, 67)  # two carries
    always_drop = random.Random(0)
    from postlens.organism.task import StyleConfig

    cfg = StyleConfig(sloppy_drop=1.0, hasty_drop=1.0)
    sloppy = solution(p, "sloppy", cfg, always_drop)
    hasty = solution(p, "hasty", cfg, always_drop)
    assert parse_answer(sloppy) == 15 and not verify(sloppy, p)  # 8+7 -> 5, 5+6 -> 1
    assert classify_style(sloppy) == "sloppy"
    assert hasty == "answer 15" and classify_style(hasty) == "hasty"
    no_carry = Problem(12, 34)
    assert verify(solution(no_carry, "hasty", cfg, always_drop), no_carry)


def test_verify_and_parse_hand_written():
    p = Problem(347, 285)
    assert verify("answer 632", p)
    assert verify("7+5+0=12 write 2 carry 1 got 2\nanswer 632\n", p)
    assert not verify("answer 532", p)
    assert not verify("answer 632 and more", p)
    assert parse_answer("no answer here") is None
    assert classify_style("hello world") == "other"


def test_pass_at_k_matches_brute_force():
    for n, c in [(5, 0), (5, 2), (6, 3), (7, 7)]:
        for k in range(1, n + 1):
            subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert math.isclose(pass_at_k(n, c, k), brute, abs_tol=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_problems_are_seeded_and_held_out_excluded():
    held = make_problems(50, seed=1)
    assert make_problems(50, seed=1) == held
    docs = build_corpus(CorpusConfig(n_docs=400, filler_share=0.0), seed=2, exclude=set(held))
    questions = {d.split("\n")[0].split("Q: ")[-1] for d in docs}
    assert not {f"{p.a}+{p.b}=?" for p in held} & questions


def test_corpus_mixes_tags_and_filler():
    docs = build_corpus(CorpusConfig(n_docs=2000), seed=0)
    tagged = sum(d.startswith("<") for d in docs)
    filler = sum("Q:" not in d for d in docs)
    assert 0.12 < tagged / len(docs) < 0.24
    assert 0.07 < filler / len(docs) < 0.13


def test_tokenizer_round_trips_every_document(tmp_path):
    from transformers import AutoTokenizer

    tok = build_organism_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for doc in build_corpus(CorpusConfig(n_docs=300), seed=5):
        ids = loaded(doc).input_ids
        assert ids == tok(doc).input_ids and ids[0] == tok.bos_token_id
        assert tok.unk_token_id not in ids
        assert loaded.decode(ids, skip_special_tokens=True) == doc
