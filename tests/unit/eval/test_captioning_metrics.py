"""Captioning metrics: clip_benchmark's numbers from its own code, the Java-free tokenizer, multiple references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from captioning_reference import CASES, clip_benchmark_captioning, clip_benchmark_dir

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval import captioning_metrics
from clipline.pipelines.eval.captioning_metrics import caption_scores, java_problem
from clipline.pipelines.eval.ptb_tokenize import java_tokenize, python_tokenize

GOLDEN = json.loads((Path(__file__).parent / "ptb_golden.json").read_text())
CB_NAMES = {"bleu_1": "Bleu_1", "bleu_2": "Bleu_2", "bleu_3": "Bleu_3", "bleu_4": "Bleu_4", "rouge_l": "ROUGE_L",
            "cider": "CIDEr"}


@pytest.fixture(scope="session")
def clip_benchmark_reference() -> dict:
    """clip_benchmark 1.6.2's metrics on CASES, computed once by its own captioning code."""
    folder = clip_benchmark_dir()
    return clip_benchmark_captioning(folder, [c for c, _ in CASES], [refs for _, refs in CASES])


def _assert_parity(scores, reference: dict) -> None:
    for ours, theirs in CB_NAMES.items():
        assert scores.metrics[ours] == pytest.approx(reference["eval"][theirs], abs=1e-6, rel=0), ours


def test_metrics_equal_clip_benchmarks(clip_benchmark_reference):
    """METEOR is left out on both sides (pycocoevalcap's Meteor, called alike; its JVMs cost 30 s here)."""
    scores = caption_scores([c for c, _ in CASES], [refs for _, refs in CASES], skip=("meteor",))
    _assert_parity(scores, clip_benchmark_reference)
    assert scores.metrics["cider"] > 0.5 and scores.metrics["bleu_4"] > 0.05  # not a degenerate all-zero case
    assert scores.tokenizer == ("ptb-java" if clip_benchmark_reference["java"] else "python")
    assert "spice" in scores.unavailable


def test_java_free_path_gives_clip_benchmarks_numbers(clip_benchmark_reference):
    """Python tokenization, against clip_benchmark run with the Stanford jar when this machine has Java."""
    scores = caption_scores([c for c, _ in CASES], [refs for _, refs in CASES], use_java=False)
    assert scores.tokenizer == "python"
    assert set(scores.unavailable) == {"meteor", "spice"}
    _assert_parity(scores, clip_benchmark_reference)


def test_python_tokenizer_matches_the_stanford_jar_on_the_golden_captions():
    captions = {i: [{"caption": caption}] for i, (caption, _) in enumerate(GOLDEN["pairs"])}
    expected = {i: [tokens] for i, (_, tokens) in enumerate(GOLDEN["pairs"])}
    assert python_tokenize(captions) == expected
    if java_problem() is None:  # the golden file still says what the jar says
        assert java_tokenize(captions) == expected


def test_a_candidate_equal_to_its_second_reference_beats_one_equal_to_none():
    others = [(c, refs) for c, refs in CASES if c][:6]
    references = [["a handwritten seven", "the digit seven in black and white"], *[refs for _, refs in others]]
    candidates = [c for c, _ in others]
    matching = caption_scores(["the digit seven in black and white", *candidates], references, use_java=False)
    unrelated = caption_scores(["a red bus parked near a tree", *candidates], references, use_java=False)
    for name in ("bleu_1", "bleu_4", "rouge_l", "cider"):
        assert matching.per_sample[name][0] > unrelated.per_sample[name][0] + 0.1, name
    assert matching.per_sample["rouge_l"][0] == pytest.approx(1.0)


def test_bad_input_is_one_clear_error():
    with pytest.raises(ClipLineError, match="no reference caption"):
        caption_scores(["a cat"], [[]], use_java=False)
    with pytest.raises(ClipLineError, match="2 captions for 1 reference"):
        caption_scores(["a cat", "a dog"], [["a cat"]], use_java=False)


def test_spice_is_unavailable_with_the_reason_when_its_jars_are_missing(monkeypatch):
    monkeypatch.setattr(captioning_metrics, "CORENLP_JARS", ("no-such-corenlp.jar",))
    if java_problem() is None:
        assert "no-such-corenlp.jar missing" in captioning_metrics.spice_problem()
    else:
        assert captioning_metrics.spice_problem() == java_problem()


def test_a_tokenizer_jar_that_loses_lines_is_replaced_by_the_python_tokenizer(monkeypatch):
    monkeypatch.setattr(captioning_metrics, "java_problem", lambda: None)
    monkeypatch.setattr(captioning_metrics, "java_tokenize", lambda captions: {})  # the jar printed nothing
    gts, res, tokenizer = captioning_metrics.tokenize(["A dog, running."], [["a dog runs", "Two dogs!"]])
    assert tokenizer == "python"
    assert (gts, res) == ({0: ["a dog runs", "two dogs"]}, {0: ["a dog running"]})
