"""fastText word vectors from a `.bin` model or a `.vec` text file, behind one `WordVectors` seam.

`.bin` (fastText's own format): every word gets a vector, out-of-vocabulary
ones from their character n-grams. `.vec` (the text format users download:
a `num_words dim` header, then `word v1 ... vd` per line, optionally gzipped):
only listed words are known. A `.vec` is either streamed, keeping only the
words asked for, or converted once into a memory-mapped cache (a float32 .npy
matrix plus a word list) in a folder named by the file's sha256, so a
million-word file is parsed once and later loads touch only the rows used.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

HASH_CHUNK = 8 * 2**20  # bytes read at a time while hashing
PARSE_BATCH = 10_000  # .vec lines parsed per numpy call
VECTORS_FILE, WORDS_FILE = "vectors.npy", "words.txt"


class WordVectors(Protocol):
    """Vectors for words; `known` is False where a word has none (it is then a zero row)."""

    dim: int

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(len(words), dim) float32 vectors and a (len(words),) bool `known` mask."""
        ...


class FastTextModel:
    """A loaded fastText model: every word is known (subword vectors for OOV words)."""

    def __init__(self, model):
        self.model = model
        self.dim = model.get_dimension()

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.zeros((len(words), self.dim), np.float32)
        for i, word in enumerate(words):
            vectors[i] = self.model.get_word_vector(word)
        return vectors, np.ones(len(words), bool)


@dataclass(frozen=True)
class VecTable:
    """Rows of a `.vec` file: `matrix` may be a memory map; only looked-up rows are read."""

    index: dict[str, int]
    matrix: np.ndarray

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array([self.index.get(w, -1) for w in words], dtype=np.int64)
        known = rows >= 0
        vectors = np.zeros((len(words), self.dim), np.float32)
        vectors[known] = self.matrix[rows[known]]
        return vectors, known


def load_bin(uri: str, cache_dir: str | None) -> FastTextModel:
    """A fastText `.bin` model; a remote one is first copied into `cache_dir` (fastText reads local files only)."""
    import fasttext

    return FastTextModel(fasttext.load_model(_local_copy(uri, cache_dir)))


def _local_copy(uri: str, cache_dir: str | None) -> str:
    """`uri` itself when local, else a copy under cache_dir/bin, refreshed when its size differs."""
    if storage.is_local(uri):
        return storage.split_protocol(uri)[1]
    if cache_dir is None:
        raise ClipLineError(f"a remote fastText model ({uri}) needs a local cache folder", "set cache_dir")
    name = hashlib.sha256(uri.encode()).hexdigest()[:16] + "-" + os.path.basename(uri)
    local = os.path.join(cache_dir, "bin", name)
    fs, path = storage.filesystem(uri)
    if not os.path.exists(local) or os.path.getsize(local) != fs.size(path):
        log.info("copying %s to %s", uri, local)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        partial = f"{local}.tmp-{uuid.uuid4().hex}"
        fs.get_file(path, partial)
        os.replace(partial, local)
    return local


def read_vec(uri: str, vocabulary: Collection[str]) -> VecTable:
    """Stream a `.vec` file, keeping only the rows of `vocabulary` (memory: those rows, not the file)."""
    wanted = set(vocabulary)
    (_, dim), batches = _parse_vec(uri)
    index: dict[str, int] = {}
    rows = [np.zeros((0, dim), np.float32)]
    for words, vectors in batches:
        keep = [i for i, w in enumerate(words) if w in wanted and w not in index]
        for i in keep:
            index[words[i]] = len(index)  # a repeated word keeps its first row, as fastText's reader does
        rows.append(vectors[keep])
    return VecTable(index, np.concatenate(rows))


def cached_vec(uri: str, cache_dir: str) -> tuple[VecTable, bool]:
    """A `.vec` file as a memory-mapped table, converting it on first use; (table, True if converted now).

    The cache folder is cache_dir/vec/<sha256 of the file's bytes>, so a changed
    file is converted again and two URIs of one file share a cache. The file
    is hashed on every call (~1 s/GB): cheaper than parsing it (~1 min/GB).
    """
    folder = os.path.join(cache_dir, "vec", file_sha256(uri))
    created = not os.path.exists(os.path.join(folder, WORDS_FILE))
    if created:
        _convert_vec(uri, folder)
    matrix = np.load(os.path.join(folder, VECTORS_FILE), mmap_mode="r")
    with open(os.path.join(folder, WORDS_FILE), encoding="utf-8", newline="") as f:
        words = f.read().split("\n")  # newline="": no "\r" translation, words stay byte-exact
    index: dict[str, int] = {}
    for i, word in enumerate(words[:len(matrix)]):
        index.setdefault(word, i)  # a repeated word keeps its first row, as fastText's reader does
    return VecTable(index, matrix), created


def file_sha256(uri: str) -> str:
    """Hex sha256 of a file's bytes, read in HASH_CHUNK pieces (constant memory)."""
    digest = hashlib.sha256()
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _convert_vec(uri: str, folder: str) -> None:
    """Parse a `.vec` into folder/vectors.npy + folder/words.txt, built aside and renamed in (atomic)."""
    log.info("converting %s into the word-vector cache %s (once)", uri, folder)
    staging = f"{folder}.tmp-{uuid.uuid4().hex}"
    os.makedirs(staging)
    try:
        (num_words, dim), batches = _parse_vec(uri)
        matrix = np.lib.format.open_memmap(os.path.join(staging, VECTORS_FILE), "w+", np.float32, (num_words, dim))
        with open(os.path.join(staging, WORDS_FILE), "w", encoding="utf-8", newline="") as words_file:
            row = _fill(matrix, batches, words_file)
        if row != num_words:
            raise ClipLineError(f"{uri}: header says {num_words} words, file has {row}", "fix or re-download it")
        matrix.flush()
        del matrix
        os.replace(staging, folder)
    except OSError:  # another process published the same cache first: use theirs
        if not os.path.exists(os.path.join(folder, WORDS_FILE)):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fill(matrix: np.ndarray, batches: Iterator[tuple[list[str], np.ndarray]], words_file: io.TextIOBase) -> int:
    """Copy parsed batches into `matrix` and their words (one per line) into `words_file`; return the row count."""
    row = 0
    for words, vectors in batches:
        if row + len(words) > len(matrix):
            raise ClipLineError(f"the .vec file has more words than its header's {len(matrix)}",
                                "fix or re-download it")
        matrix[row:row + len(words)] = vectors
        words_file.write("\n".join(words) + "\n")
        row += len(words)
    return row


def _parse_vec(uri: str) -> tuple[tuple[int, int], Iterator[tuple[list[str], np.ndarray]]]:
    """((num_words, dim), batches of (words, float32 vectors)) from a `.vec` or `.vec.gz` file, streamed."""
    fs, path = storage.filesystem(uri)
    # newline="\n": lines end at "\n" only (a stray "\r" is stripped with the line's trailing space)
    stream = io.TextIOWrapper(fs.open(path, "rb", compression="infer"), encoding="utf-8", errors="replace",
                              newline="\n")
    header = stream.readline().split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        stream.close()
        raise ClipLineError(f"{uri}: first line is not a `num_words dim` header", "give a fastText .vec file")
    shape = (int(header[0]), int(header[1]))
    return shape, _batches(stream, shape[1], uri)


def _batches(stream: io.TextIOBase, dim: int, uri: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """Parse PARSE_BATCH lines per numpy call: word, then `dim` numbers, space-separated."""
    with stream:
        while lines := list(itertools.islice(stream, PARSE_BATCH)):
            pairs = [line.rstrip().split(" ", 1) for line in lines if line.strip()]
            words = [pair[0] for pair in pairs]
            vectors = np.array(" ".join(pair[-1] for pair in pairs).split(), dtype=np.float32)
            if vectors.size != len(words) * dim or any(len(pair) != 2 for pair in pairs):
                raise ClipLineError(f"{uri}: a line in {words[0]!r}..{words[-1]!r} does not hold {dim} numbers",
                                    "give a fastText .vec file")
            yield words, vectors.reshape(len(words), dim)


def _from_bin(uri: str, vocabulary: Collection[str], cache_dir: str | None) -> WordVectors:
    return load_bin(uri, cache_dir)


def _from_vec(uri: str, vocabulary: Collection[str], cache_dir: str | None) -> WordVectors:
    return cached_vec(uri, cache_dir)[0] if cache_dir else read_vec(uri, vocabulary)


LOADERS: dict[str, Callable[[str, Collection[str], str | None], WordVectors]] = {
    ".bin": _from_bin, ".vec": _from_vec, ".vec.gz": _from_vec}


def load_word_vectors(uri: str, vocabulary: Collection[str], cache_dir: str | None) -> WordVectors:
    """Word vectors from a `.bin`, `.vec` or `.vec.gz` file, by its suffix.

    A `.vec` is memory-mapped from its cache in `cache_dir` (converted on first
    use), or, with no cache_dir, streamed keeping only `vocabulary`.
    """
    loader = next((load for suffix, load in LOADERS.items() if uri.endswith(suffix)), None)
    if loader is None:
        raise ClipLineError(f"unknown word-vector file {uri!r}", "give a fastText .bin, .vec or .vec.gz file")
    return loader(uri, vocabulary, cache_dir)
