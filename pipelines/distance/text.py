"""Caption embeddings from fastText word vectors, for distances between the text sides of datasets.

Tokens: the caption lowercased, then each run of Unicode letters, digits or
underscores (`\\w+`); punctuation separates tokens and is dropped. fastText
itself splits on whitespace only, so "Dog." and "dog" would be different words
(and "Dog." a subword guess); lowercasing also makes a cased pretrained model
match more captions.

Caption vector: as fastText's `get_sentence_vector` for unsupervised models,
the mean over the caption's tokens (repeats count) of each token's word
vector scaled to unit length; tokens whose vector is zero are left out. A
`.bin` model gives every token a vector (subwords for words it never saw); a
`.vec` file knows only its words, and other tokens are left out. A caption
with no usable token is skipped, not given a zero vector: a pile of zeros would
be a spurious cluster at the origin that moves W1. `CaptionEmbeddings.kept`
says which captions have a row.

With no model given, a small skipgram model is trained on all the captions of
the comparison (`trained` is then True): the same space for every dataset.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from clipline.pipelines.config import FastTextConfig
from clipline.pipelines.distance.word_vectors import FastTextModel, WordVectors, load_word_vectors
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

TOKEN = re.compile(r"\w+")
# fastText's defaults for the rest (skipgram, minn 3, maxn 6, ws 5, neg 5); minCount 1 because caption
# sets are small and rare words still place a caption.
TRAIN_MIN_COUNT = 1
# fastText fills its input matrix at random in 10 blocks, one per training thread, so with fewer than 10
# threads the rest is never written (upstream: zeros). fasttext-numpy2 0.10.4 allocates it uninitialised:
# with 2 threads 80% of the weights were heap garbage (up to 3e35, or NaN). 11 threads also cover the
# remainder after the tenths; the threads only share the (small) training work.
INIT_THREADS = 11
MAX_TRAINED_WEIGHT = 1e3  # trained fastText weights are O(1); larger means garbage got in


def tokenize(caption: str) -> list[str]:
    """Lowercased runs of letters, digits and underscores (see the module docstring)."""
    return TOKEN.findall(caption.lower())


@dataclass(frozen=True)
class CaptionVectors:
    """The embedded captions of one dataset."""

    vectors: np.ndarray  # (len(kept), dim) float32
    kept: np.ndarray  # indices of the captions that have a row (at least one usable token)


@dataclass(frozen=True)
class CaptionEmbeddings:
    """Every dataset's captions in one fastText space."""

    datasets: dict[str, CaptionVectors]
    model: str  # the model URI, or "trained on the captions"
    trained: bool  # True: no model was given and one was trained on these captions


def caption_vectors(captions: Sequence[str], words: WordVectors) -> CaptionVectors:
    """Mean unit word vector per caption (module docstring); captions without a usable token are skipped."""
    tokens = [tokenize(c) for c in captions]
    vocabulary = sorted({t for caption in tokens for t in caption})
    unit, usable = _unit_vectors(vocabulary, words)
    column = {w: i for i, w in enumerate(vocabulary) if usable[i]}
    counts = _token_counts(tokens, column, len(vocabulary))
    per_caption = np.asarray(counts.sum(axis=1)).ravel()
    kept = np.flatnonzero(per_caption > 0)
    if len(kept) < len(captions):
        log.info("%d of %d captions have no known word and are skipped", len(captions) - len(kept), len(captions))
    means = (counts[kept] @ unit) / per_caption[kept, None]
    return CaptionVectors(np.asarray(means, dtype=np.float32), kept)


def _unit_vectors(vocabulary: Sequence[str], words: WordVectors) -> tuple[np.ndarray, np.ndarray]:
    """(len(vocabulary), dim) unit vectors and a mask of the usable ones (known, non-zero)."""
    vectors, known = words.lookup(vocabulary)
    norms = np.linalg.norm(vectors, axis=1)
    usable = known & (norms > 0)
    return vectors / np.where(usable, norms, 1.0)[:, None], usable


def _token_counts(tokens: Sequence[Sequence[str]], column: Mapping[str, int], num_words: int) -> sparse.csr_matrix:
    """(captions, num_words) sparse matrix: how often each usable word (its `column`) occurs in each caption."""
    rows = [i for i, caption in enumerate(tokens) for t in caption if t in column]
    cols = [column[t] for caption in tokens for t in caption if t in column]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(tokens), num_words))


def train_fasttext(captions: Iterable[str], config: FastTextConfig) -> FastTextModel:
    """A skipgram model trained on the tokenized captions, in a scratch folder (the model is not saved).

    `bucket` stays small (config): fastText's 2M default makes a model of
    hundreds of MB for a few thousand captions.
    """
    import fasttext

    with tempfile.TemporaryDirectory(prefix="clipline-fasttext-") as scratch:
        corpus = os.path.join(scratch, "captions.txt")
        num_lines = _write_corpus(captions, corpus)
        if num_lines == 0:
            raise ClipLineError("no caption has a word to train fastText on", "give captions or a model_uri")
        log.info("training fastText (dim %d, %d epochs) on %d captions", config.dim, config.epoch, num_lines)
        model = fasttext.train_unsupervised(corpus, dim=config.dim, epoch=config.epoch, bucket=config.bucket,
                                            minCount=TRAIN_MIN_COUNT, thread=max(config.threads, INIT_THREADS),
                                            verbose=0)
    _check_weights(model)
    return FastTextModel(model)


def _check_weights(model) -> None:
    """Fail loudly if the trained input matrix holds non-finite or huge values (see INIT_THREADS)."""
    weights = model.get_input_matrix()
    if not np.isfinite(weights).all() or np.abs(weights).max() > MAX_TRAINED_WEIGHT:
        raise ClipLineError("the trained fastText model has non-finite or huge weights",
                            "report it with the fasttext package version; or give a model_uri")


def _write_corpus(captions: Iterable[str], path: str) -> int:
    """One line of space-joined tokens per caption with any token; return the number of lines."""
    num_lines = 0
    with open(path, "w", encoding="utf-8") as f:
        for caption in captions:
            tokens = tokenize(caption)
            if tokens:
                f.write(" ".join(tokens) + "\n")
                num_lines += 1
    return num_lines


def embed_captions(captions: Mapping[str, Sequence[str]], config: FastTextConfig | None = None) -> CaptionEmbeddings:
    """Every dataset's captions in one space: config.model_uri's vectors, or a model trained on all of them."""
    config = config or FastTextConfig()
    if config.model_uri is None:
        words: WordVectors = train_fasttext((c for caps in captions.values() for c in caps), config)
    else:
        words = load_word_vectors(config.model_uri, _vocabulary(captions), config.cache_dir)
    datasets = {name: caption_vectors(caps, words) for name, caps in captions.items()}
    return CaptionEmbeddings(datasets, config.model_uri or "trained on the captions", config.model_uri is None)


def _vocabulary(captions: Mapping[str, Sequence[str]]) -> set[str]:
    return {t for caps in captions.values() for c in caps for t in tokenize(c)}


def top_words(captions: Iterable[str], k: int | None = 20,
              stop_words: Collection[str] = ()) -> list[tuple[str, int]]:
    """The k most frequent tokens of `captions` (all with k None) with their counts, most frequent first (ties:
    alphabetical).

    Pass `english_stop_words()` to drop "a", "the", "of" and the like.
    """
    counts = Counter(t for c in captions for t in tokenize(c) if t not in stop_words)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]


def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop-word list (318 words)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS
