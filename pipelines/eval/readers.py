"""Dataset layouts the evaluation reads, one registry entry each.

- `clip-benchmark`: clip_benchmark's WebDataset layout, `ROOT/SPLIT/0.tar ...` with
  `nshards.txt`, samples `key.jpg|png` + `key.cls` (class index as text) and
  optionally `key.txt` (captions, one per line), `ROOT/classnames.txt` and
  `ROOT/zeroshot_classification_templates.txt`.
- `csv`: rows of `path_or_url,label` (label: the class name; an optional header row).
- `shards`: clipline shards, `key.png|jpg` + `key.txt` (caption) + `key.json`
  (`{"label": index}`), class names from a `classnames.txt` beside them.

In tar layouts a sample's captions are the lines of `key.txt`, then the strings
of a list under `"captions"` in `key.json` (more references for captioning).
- `folder`: `ROOT/<class name>/<image files>`.

A reader only lists samples and what the layout says about them; `datasets.py`
checks labels, class names and templates against the tasks asked for.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from clipline.pipelines import storage
from clipline.pipelines.data.loader import check_shards, shard_uris
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.sources import ImageSource
from clipline.pipelines.shard_format import IMAGE_EXTS, TarSample, index_tar

CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"


@dataclass(frozen=True)
class SampleRef:
    key: str
    source: ImageSource
    label: int | str | None = None  # a class index or a class name, as the layout stores it
    captions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawDataset:
    samples: tuple[SampleRef, ...]
    classnames: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None
    train: RawDataset | None = None  # the layout's own training split (linear probes)


@dataclass(frozen=True)
class ReadOptions:
    split: str = "test"
    train_split: str = "train"


def read_lines(uri: str) -> tuple[str, ...]:
    """Non-blank lines, stripped (clip_benchmark's classnames and templates files)."""
    return tuple(line.strip() for line in storage.read_text(uri).splitlines() if line.strip())


def _optional_lines(uri: str) -> tuple[str, ...] | None:
    return read_lines(uri) if storage.exists(uri) else None


def _json_captions(sample: TarSample) -> list[str]:
    try:
        listed = json.loads(sample.texts["json"]).get("captions") if "json" in sample.texts else None
    except (ValueError, AttributeError):
        return []  # an unreadable .json is reported by the label reader when a task needs it
    return [text.strip() for text in listed if isinstance(text, str) and text.strip()] if isinstance(listed, list) \
        else []


def _captions(sample: TarSample) -> tuple[str, ...]:
    """Each line of key.txt, then the strings listed under "captions" in key.json (more references)."""
    lines = [line.strip() for line in sample.texts.get("txt", "").splitlines() if line.strip()]
    return tuple(dict.fromkeys(lines + _json_captions(sample)))


def _parsed(uri: str, sample: TarSample, ext: str, parse: Callable[[str], object]):
    try:
        return parse(sample.texts[ext]) if ext in sample.texts else None
    except (ValueError, TypeError, AttributeError) as e:
        raise ClipLineError(f"sample {sample.key} in {uri}: unreadable .{ext} ({e})",
                            f"fix the .{ext} member (cls: a class index; json: an object)") from e


def _tar_refs(uris: list[str], label_of: Callable[[str, TarSample], object]) -> tuple[SampleRef, ...]:
    return tuple(SampleRef(s.key, ImageSource(uri, s.images[0]), label_of(uri, s), _captions(s))
                 for uri in uris for s in index_tar(uri))


def _cls_label(uri: str, sample: TarSample) -> int | None:
    return _parsed(uri, sample, "cls", lambda text: int(text.strip()))


def _json_label(uri: str, sample: TarSample) -> int | str | None:
    return _parsed(uri, sample, "json", lambda text: json.loads(text).get("label"))


def _clip_benchmark_split(root: str, split: str) -> tuple[SampleRef, ...]:
    num_shards = int(storage.read_text(storage.join(root, split, "nshards.txt")).strip())
    uris = [storage.join(root, split, f"{i}.tar") for i in range(num_shards)]  # clip_benchmark's {0..n-1}
    check_shards(uris)
    return _tar_refs(uris, _cls_label)


def _read_clip_benchmark(root: str, options: ReadOptions) -> RawDataset:
    has_train = (options.train_split != options.split
                 and storage.exists(storage.join(root, options.train_split, "nshards.txt")))
    train = RawDataset(_clip_benchmark_split(root, options.train_split)) if has_train else None
    return RawDataset(_clip_benchmark_split(root, options.split),
                      _optional_lines(storage.join(root, CLASSNAMES_FILE)),
                      _optional_lines(storage.join(root, TEMPLATES_FILE)), train)


def _read_shards(spec: str, options: ReadOptions) -> RawDataset:
    uris = shard_uris(spec)
    classnames = _optional_lines(storage.join(posixpath.dirname(uris[0]), CLASSNAMES_FILE)) if uris else None
    return RawDataset(_tar_refs(uris, _json_label), classnames)


def _subfolders(root: str) -> list[str]:
    fs, path = storage.filesystem(root)
    names = (posixpath.basename(e["name"].rstrip("/")) for e in fs.ls(path, detail=True) if e["type"] == "directory")
    return sorted(name for name in names if not name.startswith("."))


def _is_image(name: str) -> bool:
    return name.rsplit(".", 1)[-1].lower() in IMAGE_EXTS


def _read_folder(root: str, options: ReadOptions) -> RawDataset:
    classes = _subfolders(root)
    samples = []
    for name in classes:
        for uri in storage.glob(storage.join(root, name, "*")):
            if _is_image(uri):
                samples.append(SampleRef(f"{name}/{posixpath.basename(uri)}", ImageSource(uri), name))
    return RawDataset(tuple(samples), tuple(classes))


def _csv_source(csv_uri: str, path: str) -> ImageSource:
    if "://" in path or path.startswith("/"):
        return ImageSource(path)
    return ImageSource(storage.join(posixpath.dirname(csv_uri), path))


def _read_csv(uri: str, options: ReadOptions) -> RawDataset:
    rows = [r for r in csv.reader(io.StringIO(storage.read_text(uri))) if any(cell.strip() for cell in r)]
    if rows and rows[0][-1].strip().lower() == "label":
        rows = rows[1:]  # a header row
    samples = []
    for number, row in enumerate(rows, start=1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ClipLineError(f"{uri}: data row {number} is {row!r}, not path_or_url,label",
                                "write two columns: an image path or URL, then its class name")
        samples.append(SampleRef(row[0].strip(), _csv_source(uri, row[0].strip()), row[1].strip()))
    return RawDataset(tuple(samples))


def _exists(uri: str) -> bool:
    try:
        return storage.exists(uri)
    except ClipLineError:
        return False


def _looks_like_shards(spec: str) -> bool:
    return ("{" in spec or "::" in spec or spec.endswith(".tar")
            or (storage.is_dir(spec) and bool(storage.glob(storage.join(spec, "*.tar")))))


@dataclass(frozen=True)
class Reader:
    matches: Callable[[str, ReadOptions], bool]
    read: Callable[[str, ReadOptions], RawDataset]


# Tried in this order when the spec has no KIND: prefix.
READERS: dict[str, Reader] = {
    "clip-benchmark": Reader(lambda s, o: _exists(storage.join(s, o.split, "nshards.txt")), _read_clip_benchmark),
    "csv": Reader(lambda s, o: s.lower().endswith(".csv"), _read_csv),
    "shards": Reader(lambda s, o: _looks_like_shards(s), _read_shards),
    "folder": Reader(lambda s, o: storage.is_dir(s) and bool(_subfolders(s)), _read_folder),
}


def read_raw(spec: str, options: ReadOptions) -> tuple[str, RawDataset]:
    """(reader kind, samples and metadata) of a dataset spec, `KIND:` forcing a reader."""
    kind, _, rest = spec.partition(":")
    if kind in READERS:
        return kind, READERS[kind].read(rest, options)
    for kind, reader in READERS.items():
        if reader.matches(spec, options):
            return kind, reader.read(spec, options)
    problem = "does not exist" if not _exists(spec) else "is no layout a reader recognises"
    raise ClipLineError(f"dataset {spec} {problem}",
                        f"give shards, a clip_benchmark root (with {options.split}/nshards.txt), a folder of class "
                        f"folders or a CSV; or prefix one of {', '.join(READERS)} and a colon")
