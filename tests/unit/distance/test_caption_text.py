"""fastText caption embeddings: .bin and .vec loaders agree, the .vec cache is reused, captions embed as documented.

The model is real: a tiny skipgram trained on gensim's Lee corpus (dim 16, one
epoch, ~1 s) by `train_fasttext`, written both as fastText's .bin and as a .vec text file.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import fasttext
import numpy as np
import pytest
from gensim.test.utils import datapath

from clipline.pipelines.config import FastTextConfig
from clipline.pipelines.distance import word_vectors
from clipline.pipelines.distance.text import (
    caption_vectors,
    embed_captions,
    english_stop_words,
    tokenize,
    top_words,
    train_fasttext,
)
from clipline.pipelines.distance.word_vectors import cached_vec, load_bin, load_word_vectors, read_vec
from clipline.pipelines.errors import ClipLineError

CAPTIONS = ["The president spoke to the government.", "Police said the fire was near the city!",
            "the the government", "xqzv qqqj ???", ""]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, str]:
    """A tiny fastText model trained on the Lee corpus, saved as .bin and written as .vec (and .vec.gz)."""
    folder = tmp_path_factory.mktemp("fasttext")
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        corpus = f.read().splitlines()
    config = FastTextConfig(dim=16, bucket=2000, epoch=1, threads=1, cache_dir=str(folder))
    model = train_fasttext(corpus, config).model
    paths = {kind: str(folder / f"lee.{kind}") for kind in ("bin", "vec", "vec.gz")}
    model.save_model(paths["bin"])
    lines = [f"{len(model.words)} 16"]
    lines += [w + " " + " ".join(repr(float(v)) for v in model.get_word_vector(w)) + " " for w in model.words]
    text = "\n".join(lines) + "\n"
    with open(paths["vec"], "w", encoding="utf-8") as f:
        f.write(text)
    with gzip.open(paths["vec.gz"], "wt", encoding="utf-8") as f:
        f.write(text)
    return paths


WORDS = ["the", "government", "police", "city", "fire", "</s>"]


def test_vec_and_bin_loaders_give_the_same_vectors(model_files, tmp_path):
    from_bin, _ = load_bin(model_files["bin"], None).lookup(WORDS)
    for table in (read_vec(model_files["vec"], WORDS), read_vec(model_files["vec.gz"], WORDS),
                  cached_vec(model_files["vec"], str(tmp_path))[0]):
        vectors, known = table.lookup(WORDS)
        assert known.all()
        np.testing.assert_allclose(vectors, from_bin, rtol=1e-6, atol=1e-7)


def test_streamed_vec_keeps_only_the_words_asked_for(model_files):
    table = read_vec(model_files["vec"], ["police", "not-a-word-here"])
    assert set(table.index) == {"police"}
    assert table.matrix.shape == (1, 16)


def test_vec_cache_is_built_once_and_reused_without_parsing(model_files, tmp_path, monkeypatch):
    first, created = cached_vec(model_files["vec"], str(tmp_path))
    assert created
    (folder,) = (tmp_path / "vec").iterdir()
    mtime = (folder / "vectors.npy").stat().st_mtime_ns

    def no_parsing(uri):
        raise AssertionError("the cached .vec was parsed again")

    monkeypatch.setattr(word_vectors, "_parse_vec", no_parsing)
    second, created = cached_vec(model_files["vec"], str(tmp_path))
    assert not created
    assert (folder / "vectors.npy").stat().st_mtime_ns == mtime
    assert isinstance(second.matrix, np.memmap)
    np.testing.assert_array_equal(second.lookup(WORDS)[0], first.lookup(WORDS)[0])


def test_a_changed_vec_file_gets_a_new_cache(model_files, tmp_path):
    changed = tmp_path / "changed.vec"
    shutil.copy(model_files["vec"], changed)
    cached_vec(str(changed), str(tmp_path / "cache"))
    with open(changed, "a", encoding="utf-8") as f:
        f.write("\n")  # same words, different bytes
    assert cached_vec(str(changed), str(tmp_path / "cache"))[1]
    assert len(list((tmp_path / "cache" / "vec").iterdir())) == 2


def test_a_file_without_a_vec_header_is_refused(tmp_path):
    bad = tmp_path / "bad.vec"
    bad.write_text("the 0.1 0.2\n")
    with pytest.raises(ClipLineError, match="header"):
        read_vec(str(bad), ["the"])


def test_an_unknown_model_suffix_is_refused():
    with pytest.raises(ClipLineError, match=r"\.bin, \.vec"):
        load_word_vectors("model.txt", [], None)


def test_caption_vector_is_fasttexts_sentence_vector_for_plain_lowercase_captions(model_files):
    model = fasttext.load_model(model_files["bin"])
    captions = ["the president spoke", "police said the fire the"]
    ours = caption_vectors(captions, load_bin(model_files["bin"], None)).vectors
    theirs = np.stack([model.get_sentence_vector(c) for c in captions])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_captions_embed_alike_from_bin_and_vec_except_out_of_vocabulary_words(model_files):
    from_bin = caption_vectors(CAPTIONS, load_bin(model_files["bin"], None))
    from_vec = caption_vectors(CAPTIONS, read_vec(model_files["vec"], {t for c in CAPTIONS for t in tokenize(c)}))
    assert list(from_bin.kept) == [0, 1, 2, 3]  # subword vectors for "xqzv qqqj"; the empty caption is skipped
    assert list(from_vec.kept) == [0, 1, 2]  # .vec knows no "xqzv" nor "qqqj"
    np.testing.assert_allclose(from_vec.vectors, from_bin.vectors[:3], rtol=1e-5, atol=1e-6)


def test_without_a_model_one_is_trained_on_all_captions(tmp_path):
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    config = FastTextConfig(dim=8, epoch=1, bucket=1000, threads=1, cache_dir=str(tmp_path))
    embedded = embed_captions({"a": lines[:100], "b": lines[100:200]}, config)
    assert embedded.trained
    assert embedded.datasets["a"].vectors.shape == (100, 8)


def test_a_trained_model_has_every_weight_initialised_even_on_a_dirty_heap():
    # MALLOC_PERTURB_ fills fresh heap memory with junk: weights fastText never wrote would show (text.INIT_THREADS).
    code = ("from clipline.pipelines.config import FastTextConfig\n"
            "from clipline.pipelines.distance.text import train_fasttext\n"
            "lines = open(__import__('gensim.test.utils').test.utils.datapath('lee_background.cor')).readlines()\n"
            "m = train_fasttext(lines[:200], FastTextConfig(dim=8, bucket=1000, epoch=1, threads=1)).model\n"
            "print(abs(m.get_input_matrix()).max())")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MALLOC_PERTURB_": "1"},
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 10


def test_a_given_vec_model_is_used_and_not_retrained(model_files, tmp_path):
    config = FastTextConfig(model_uri=model_files["vec"], cache_dir=str(tmp_path))
    embedded = embed_captions({"a": CAPTIONS[:2], "b": CAPTIONS[2:]}, config)
    assert not embedded.trained
    assert embedded.model == model_files["vec"]
    assert embedded.datasets["b"].vectors.shape == (1, 16)
    assert os.path.isdir(tmp_path / "vec")  # went through the cache


def test_tokens_are_lowercased_word_runs_without_punctuation():
    assert tokenize("A Dog's ball, on grass!") == ["a", "dog", "s", "ball", "on", "grass"]


def test_top_words_counts_tokens_most_frequent_first_and_drops_stop_words():
    captions = ["A dog on grass.", "The dog runs", "a cat"]
    assert top_words(captions, k=2) == [("a", 2), ("dog", 2)]
    assert top_words(captions, k=2, stop_words=english_stop_words()) == [("dog", 2), ("cat", 1)]


def test_the_word_vector_cache_must_be_a_local_folder():
    with pytest.raises(ValueError, match="local folder"):
        FastTextConfig(cache_dir="s3://bucket/cache")
