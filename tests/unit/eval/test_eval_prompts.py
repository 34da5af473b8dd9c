"""Prompt strategies on hand-made embeddings: single, ensemble (CLIP's / clip_benchmark's) and vote."""

from __future__ import annotations

import numpy as np
import pytest
from eval_data import unit_rows

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.prompts import LOGIT_SCALE, STRATEGIES, check_templates, class_prompts


def _unit(*vector: float) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_prompts_are_template_major():
    assert class_prompts(["cat", "dog"], ["a {c}", "the {c}."]) == ["a cat", "a dog", "the cat.", "the dog."]


def test_ensemble_is_clip_benchmarks_zero_shot_classifier():
    images, prompts = unit_rows(7, 16, seed=1), unit_rows(3 * 5, 16, seed=2).reshape(3, 5, 16)
    classifier = prompts.mean(axis=0)  # clip_benchmark: F.normalize(...).mean(0), then / norm
    classifier /= np.linalg.norm(classifier, axis=1, keepdims=True)
    logits = LOGIT_SCALE * images @ classifier.T
    scores = STRATEGIES["ensemble"](images, prompts)
    assert scores.top.tolist() == np.argsort(-logits, axis=1)[:, :5].tolist()
    assert scores.top_scores == pytest.approx(np.sort(logits, axis=1)[:, ::-1], abs=1e-4)


def test_single_uses_only_the_first_template():
    images, prompts = unit_rows(7, 16, seed=3), unit_rows(2 * 5, 16, seed=4).reshape(2, 5, 16)
    expected = np.argsort(-(images @ prompts[0].T), axis=1)[:, :5]
    assert STRATEGIES["single"](images, prompts).top.tolist() == expected.tolist()


def test_vote_and_ensemble_disagree_where_one_template_is_confident():
    # Two templates lean slightly to class 0, the third points hard at class 1: two votes to one for class 0,
    # but the mean embedding sits closer to class 1.
    image = _unit(1, 0, 0)[None]
    prompts = np.stack([
        np.stack([_unit(0.6, 0.8, 0), _unit(0.55, 0.83, 0.1)]),  # template 0: class 0 at 0.6, class 1 at 0.55
        np.stack([_unit(0.6, 0.8, 0), _unit(0.55, 0.83, 0.1)]),  # template 1: the same
        np.stack([_unit(0.0, 1.0, 0), _unit(1.0, 0.0, 0.0)]),  # template 2: class 1 matches the image exactly
    ])
    assert STRATEGIES["vote"](image, prompts).top[0, 0] == 0
    assert STRATEGIES["vote"](image, prompts).top_scores[0].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert STRATEGIES["ensemble"](image, prompts).top[0, 0] == 1
    assert STRATEGIES["single"](image, prompts).top[0, 0] == 0


def test_a_vote_tie_goes_to_the_higher_summed_score():
    image = _unit(1, 0, 0)[None]
    prompts = np.stack([
        np.stack([_unit(0.9, 0.1, 0), _unit(0.8, 0.2, 0), _unit(0, 0, 1)]),  # votes class 0 (0.99 vs 0.97)
        np.stack([_unit(0.1, 0.9, 0), _unit(0.5, 0.5, 0), _unit(0, 0, 1)]),  # votes class 1 (0.11 vs 0.71)
    ])
    # one vote each for classes 0 and 1; summed: class 0 ~1.10, class 1 ~1.68 -> class 1, then class 0, then 2
    assert STRATEGIES["vote"](image, prompts).top[0].tolist() == [1, 0, 2]


@pytest.mark.parametrize("template, problem", [("a photo of a thing", "has no {c}"),
                                               ("a {c} on a {background}", "uses fields")])
def test_template_without_c_or_with_other_fields_is_an_error(template, problem):
    with pytest.raises(ClipLineError, match=problem):
        check_templates(["a {c}", template], "templates.txt")
