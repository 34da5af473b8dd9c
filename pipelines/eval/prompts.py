"""Prompt templates, and the zero-shot strategies that turn their text embeddings into class scores.

Every strategy takes image features (n, d) and prompt features (T, C, d) -- the
embedding of template t filled with class c, unit length -- so the T x C
prompts are embedded once and shared by all strategies.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.metrics import top_k

# CLIP's 7 ImageNet templates chosen by its prompt-engineering notebook (Radford et al. 2021).
DEFAULT_TEMPLATES = ("itap of a {c}.", "a bad photo of the {c}.", "a origami {c}.", "a photo of the large {c}.",
                     "a {c} in a video game.", "art of the {c}.", "a photo of the small {c}.")
LOGIT_SCALE = 100.0  # clip_benchmark's fixed scale: reported scores equal its logits
TOP_K = 5  # predictions keep the 5 best classes (acc5)


def check_templates(templates: Sequence[str], where: str) -> tuple[str, ...]:
    """The templates, or a ClipLineError naming the first that lacks {c} or uses another field."""
    if not templates:
        raise ClipLineError(f"no prompt templates in {where}", "give one template per line, each with {c}")
    for template in templates:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if fields != {"c"}:
            raise ClipLineError(f"template {template!r} ({where}) has no {{c}} for the class name"
                                if "c" not in fields else f"template {template!r} ({where}) uses fields {fields}",
                                "write each template with {c} where the class name goes, and no other {field}")
    return tuple(templates)


def class_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every template filled with every class name, template-major: prompt t * C + c."""
    return [template.format(c=name) for template in templates for name in classnames]


@dataclass(frozen=True)
class ClassScores:
    """One strategy's verdict on n images: the best classes and the score each was ranked by."""

    top: np.ndarray  # (n, min(5, C)) class indices, best first
    top_scores: np.ndarray  # (n, min(5, C)) the strategy's score of each


def _scored(scores: np.ndarray) -> ClassScores:
    top = top_k(scores, TOP_K)
    return ClassScores(top, np.take_along_axis(scores, top, axis=1))


def _logits(images: np.ndarray, classifier: np.ndarray) -> np.ndarray:
    # torch's matmul, as clip_benchmark, so logits agree to the last bit where ranking is close.
    return (LOGIT_SCALE * torch.from_numpy(images) @ torch.from_numpy(classifier).T).numpy()


def single(images: np.ndarray, prompts: np.ndarray) -> ClassScores:
    """The first template alone."""
    return _scored(_logits(images, prompts[0]))


def ensemble(images: np.ndarray, prompts: np.ndarray) -> ClassScores:
    """CLIP's prompt ensembling, as clip_benchmark's zero_shot_classifier: mean of the unit template embeddings
    of each class, renormalized."""
    classifier = prompts.mean(axis=0)
    classifier /= np.linalg.norm(classifier, axis=-1, keepdims=True)
    return _scored(_logits(images, classifier))


def vote(images: np.ndarray, prompts: np.ndarray) -> ClassScores:
    """Each template predicts a class; most votes win, ties go to the higher score summed over templates.

    Reported scores are the share of templates voting for the class. Templates
    are scored one at a time, so memory stays (n, C) however many there are.
    """
    votes = np.zeros((len(images), prompts.shape[1]))
    summed = np.zeros_like(votes)
    for template in prompts:
        logits = _logits(images, template)
        votes[np.arange(len(images)), logits.argmax(axis=1)] += 1
        summed += logits
    # Votes are whole numbers; the summed score, squeezed into [0, 0.5) per row, orders classes within a vote count.
    low, high = summed.min(axis=1, keepdims=True), summed.max(axis=1, keepdims=True)
    top = top_k(votes + 0.5 * (summed - low) / (high - low + 1e-12), TOP_K)
    return ClassScores(top, np.take_along_axis(votes / len(prompts), top, axis=1))


STRATEGIES: dict[str, Callable[[np.ndarray, np.ndarray], ClassScores]] = {
    "single": single, "ensemble": ensemble, "vote": vote,
}
