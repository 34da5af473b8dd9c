"""Captioning metrics as clip_benchmark 1.6.2 computes them: pycocoevalcap's scorers on PTB-tokenized captions.

clip_benchmark's `COCOEvalCap` tokenizes references and candidates with
pycocoevalcap's PTBTokenizer, then runs Bleu(4), Meteor, Rouge, Cider and Spice
on them. Here the same scorers run on the same tokens:

- BLEU-1..4, ROUGE-L, CIDEr: pure Python (pycocoevalcap's code), always;
- tokenization: the Stanford jar through pycocoevalcap when `java` runs, else
  `ptb_tokenize.python_tokenize` (the same tokens on plain captions, see there);
- METEOR: pycocoevalcap's Meteor (meteor-1.5.jar), only when `java` runs;
- SPICE: pycocoevalcap's Spice, only when `java` runs and the Stanford CoreNLP
  3.6.0 jars it downloads on first use are already in place: nothing is
  downloaded at run time.

A metric that cannot be computed is listed in `unavailable` with the reason.
CIDEr's document frequencies come from the references of the whole set, so it
is a corpus score: scoring a subset gives different numbers.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.ptb_tokenize import java_tokenize, python_tokenize

log = logging.getLogger(__name__)

CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


@dataclass(frozen=True)
class CaptionScores:
    metrics: dict[str, float]  # bleu_1..bleu_4, rouge_l, cider, and meteor / spice when available
    per_sample: dict[str, list[float]]  # cider, rouge_l (and bleu_4) of each sample, in input order
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    tokenizer: str = "python"  # "ptb-java" or "python"


@functools.cache
def java_problem() -> str | None:
    """None when `java` runs, else why not."""
    if shutil.which("java") is None:
        return "no `java` on PATH (install a JRE, e.g. Debian's default-jre-headless)"
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`java -version` failed: {e}"
    return None


def spice_problem() -> str | None:
    """None when SPICE can run offline, else why not."""
    if problem := java_problem():
        return problem
    import pycocoevalcap.spice as spice

    lib = os.path.join(os.path.dirname(spice.__file__), "lib")
    missing = [jar for jar in CORENLP_JARS if not os.path.exists(os.path.join(lib, jar))]
    if missing:
        return (f"{', '.join(missing)} missing from {lib}: pycocoevalcap downloads them on first use and clipline "
                "downloads nothing at run time (fetch them once with `python -m pycocoevalcap.spice."
                "get_stanford_models`)")
    return None


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ClipLineError(f"{len(candidates)} captions for {len(references)} reference lists",
                            "give one generated caption per sample")
    if not candidates:
        raise ClipLineError("no captions to score", "evaluate a dataset with at least one readable image")
    empty = next((i for i, refs in enumerate(references) if not refs), None)
    if empty is not None:
        raise ClipLineError(f"sample {empty} has no reference caption",
                            "give every sample a key.txt caption (or a references list in its key.json)")


def tokenize(candidates: Sequence[str], references: Sequence[Sequence[str]], use_java: bool = True
             ) -> tuple[dict, dict, str]:
    """(references, candidates, tokenizer name) as COCOEvalCap hands them to the scorers: {i: [tokenized]}."""
    gts = {i: [{"caption": text} for text in refs] for i, refs in enumerate(references)}
    res = {i: [{"caption": text}] for i, text in enumerate(candidates)}
    if use_java and java_problem() is None:
        try:
            return _checked(java_tokenize(gts), gts), _checked(java_tokenize(res), res), "ptb-java"
        except (OSError, ValueError, subprocess.SubprocessError) as e:  # e.g. a read-only site-packages
            log.warning("the PTB tokenizer jar failed (%s); tokenizing in Python instead", e)
    return python_tokenize(gts), python_tokenize(res), "python"


def _checked(tokenized: dict, given: dict) -> dict:
    """The jar's output, refused when it lost lines (pycocoevalcap would pair captions with the wrong ones)."""
    if {k: len(v) for k, v in tokenized.items()} != {k: len(v) for k, v in given.items()}:
        raise ValueError("its output does not have one line per caption")
    return tokenized


def _quiet(score: Callable[[dict, dict], tuple]) -> Callable[[dict, dict], tuple]:
    def run(gts: dict, res: dict) -> tuple:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints its progress
            return score(gts, res)
    return run


def _bleu(gts: dict, res: dict) -> dict[str, tuple]:
    from pycocoevalcap.bleu.bleu import Bleu

    score, scores = _quiet(Bleu(4).compute_score)(gts, res)
    return {f"bleu_{n + 1}": (score[n], scores[n]) for n in range(4)}


def _rouge(gts: dict, res: dict) -> dict[str, tuple]:
    from pycocoevalcap.rouge.rouge import Rouge

    return {"rouge_l": Rouge().compute_score(gts, res)}


def _cider(gts: dict, res: dict) -> dict[str, tuple]:
    from pycocoevalcap.cider.cider import Cider

    return {"cider": Cider().compute_score(gts, res)}


def _meteor(gts: dict, res: dict) -> dict[str, tuple]:
    from pycocoevalcap.meteor.meteor import Meteor

    return {"meteor": Meteor().compute_score(gts, res)}


def _spice(gts: dict, res: dict) -> dict[str, tuple]:
    from pycocoevalcap.spice.spice import Spice

    score, scores = _quiet(Spice().compute_score)(gts, res)
    return {"spice": (score, [s["All"]["f"] for s in scores])}


@dataclass(frozen=True)
class Scorer:
    names: tuple[str, ...]
    score: Callable[[dict, dict], dict[str, tuple]]
    needs_java: bool = False
    problem: Callable[[], str | None] = lambda: None  # why it cannot run here, or None


SCORERS: tuple[Scorer, ...] = (  # clip_benchmark's order
    Scorer(("bleu_1", "bleu_2", "bleu_3", "bleu_4"), _bleu),
    Scorer(("meteor",), _meteor, True, lambda: java_problem()),
    Scorer(("rouge_l",), _rouge),
    Scorer(("cider",), _cider),
    Scorer(("spice",), _spice, True, lambda: spice_problem()),
)

NO_JAVA = "the Java tools were turned off by the caller"


def _problem(scorer: Scorer, use_java: bool, skip: Sequence[str]) -> str | None:
    if set(scorer.names) & set(skip):
        return "skipped by the caller"
    return NO_JAVA if scorer.needs_java and not use_java else scorer.problem()


def caption_scores(candidates: Sequence[str], references: Sequence[Sequence[str]], use_java: bool = True,
                   skip: Sequence[str] = ()) -> CaptionScores:
    """Corpus metrics of one generated caption per sample against that sample's references (one or more).

    `use_java=False` tokenizes in Python and skips METEOR and SPICE even where `java` runs; `skip` names scorers
    not to run (e.g. `("meteor",)`: its JVM takes about 10 s to load its paraphrase table)."""
    _check(candidates, references)
    gts, res, tokenizer = tokenize(candidates, references, use_java)
    metrics, per_sample, unavailable = {}, {}, {}
    for scorer in SCORERS:
        if problem := _problem(scorer, use_java, skip):
            unavailable.update(dict.fromkeys(scorer.names, problem))
            continue
        try:
            computed = scorer.score(gts, res)
        except (OSError, ValueError, subprocess.SubprocessError) as e:  # a jar that fails to start or answer
            log.warning("%s not computed: %s", "/".join(scorer.names), e)
            unavailable.update(dict.fromkeys(scorer.names, f"{type(e).__name__}: {e}"))
            continue
        for name, (score, scores) in computed.items():
            metrics[name] = float(score)
            per_sample[name] = [float(s) for s in scores]
    for name, reason in unavailable.items():
        log.info("%s unavailable: %s", name, reason)
    return CaptionScores(metrics, per_sample, unavailable, tokenizer)
