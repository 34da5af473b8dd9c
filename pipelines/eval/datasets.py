"""An evaluation dataset, checked against the tasks asked for before any image is embedded.

`load_dataset` reads a spec with the reader registry (readers.py), then
settles class names (--classnames, else the layout's, else the folder or CSV
label names), labels (each a valid class index), templates (--templates, else
the layout's, else CLIP's defaults) and captions. Every problem is a
ClipLineError naming the dataset, the sample or the class, and the fix.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clipline.pipelines.config import FetchConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.prompts import DEFAULT_TEMPLATES, check_templates
from clipline.pipelines.eval.readers import RawDataset, ReadOptions, SampleRef, read_lines, read_raw
from clipline.pipelines.eval.sources import ImageSource

LABEL_TASKS = frozenset({"zeroshot", "linear-probe"})
CAPTION_TASKS = frozenset({"retrieval", "captioning"})


@dataclass(frozen=True)
class EvalDataset:
    name: str  # the spec as given: results are stored under it
    kind: str  # the reader that read it
    keys: tuple[str, ...]
    sources: tuple[ImageSource, ...]
    labels: np.ndarray | None  # class index per sample, when a task needs labels
    captions: tuple[tuple[str, ...], ...]
    classnames: tuple[str, ...] | None
    templates: tuple[str, ...]
    train: EvalDataset | None = None  # the layout's own training split, for linear probes
    fetch: FetchConfig = field(default_factory=FetchConfig)  # how read_images downloads http(s) sources

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class DatasetOptions:
    """What the evaluation asks of its datasets (a slice of EvalConfig)."""

    tasks: tuple[str, ...]
    classnames_uri: str | None = None
    templates_uri: str | None = None
    split: str = "test"
    train_split: str = "train"
    fetch: FetchConfig = field(default_factory=FetchConfig)  # for images behind http(s) URLs


def _classnames(raw: RawDataset, options: DatasetOptions) -> tuple[str, ...] | None:
    if options.classnames_uri:
        return read_lines(options.classnames_uri)
    if raw.classnames is not None:
        return raw.classnames
    names = {s.label for s in raw.samples if isinstance(s.label, str)}
    return tuple(sorted(names)) if names else None


def _label_index(sample: SampleRef, classnames: Sequence[str] | None, name: str) -> int:
    label = sample.label
    if label is None or isinstance(label, bool):
        raise ClipLineError(f"sample {sample.key} of {name} has no label",
                            "give every sample a label (key.cls, key.json {\"label\": i}, its folder or CSV column)")
    if isinstance(label, str):
        if classnames is None or label not in classnames:
            raise ClipLineError(f"label {label!r} of sample {sample.key} in {name} is missing from the class names",
                                "add it to the --classnames file, or fix the label")
        return classnames.index(label)
    if classnames is not None and not 0 <= label < len(classnames):
        raise ClipLineError(f"label {label} of sample {sample.key} in {name} is missing from the "
                            f"{len(classnames)} class names", "give a --classnames file with a name for every label")
    return int(label)


def _labels(samples: Sequence[SampleRef], classnames: Sequence[str] | None, name: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(classnames)} if classnames else None
    if index is not None and len(index) != len(classnames):
        duplicates = [n for n, count in Counter(classnames).items() if count > 1]
        raise ClipLineError(f"class names of {name} repeat {duplicates[:3]}", "give each class one line")
    return np.array([_label_index(s, classnames, name) for s in samples], dtype=np.int64)


def _check_every_class_has_samples(labels: np.ndarray, classnames: Sequence[str], name: str) -> None:
    empty = [classnames[i] for i in sorted(set(range(len(classnames))) - set(labels.tolist()))]
    if empty:
        raise ClipLineError(f"{len(empty)} class(es) of {name} have no samples: {', '.join(empty[:5])}",
                            "add images for them, or drop them from the class names")


def _check_captions(samples: Sequence[SampleRef], name: str, tasks: set[str]) -> None:
    missing = next((s for s in samples if not s.captions), None)
    if missing is not None:
        asking = sorted(tasks & CAPTION_TASKS)
        raise ClipLineError(f"{' and '.join(asking)} {'needs' if len(asking) == 1 else 'need'} captions, and "
                            f"sample {missing.key} of {name} has none",
                            "use a dataset with key.txt captions (clipline shards, clip_benchmark layout)")


def _templates(raw: RawDataset, options: DatasetOptions, name: str) -> tuple[str, ...]:
    if options.templates_uri:
        return check_templates(read_lines(options.templates_uri), options.templates_uri)
    if raw.templates is not None:
        return check_templates(raw.templates, f"the templates of {name}")
    return DEFAULT_TEMPLATES


def _split(raw: RawDataset, name: str, kind: str, classnames, templates, tasks: set[str]) -> EvalDataset:
    if not raw.samples:
        raise ClipLineError(f"dataset {name} has no images", "check the path and the layout (see clipline eval --help)")
    labels = _labels(raw.samples, classnames, name) if tasks & LABEL_TASKS else None
    if "zeroshot" in tasks and classnames is None:
        raise ClipLineError(f"zero-shot on {name} needs class names", "pass --classnames FILE (one name per line)")
    if tasks & CAPTION_TASKS:
        _check_captions(raw.samples, name, tasks)
    return EvalDataset(name, kind, tuple(s.key for s in raw.samples), tuple(s.source for s in raw.samples), labels,
                       tuple(s.captions for s in raw.samples), classnames, templates)


def load_dataset(spec: str, options: DatasetOptions) -> EvalDataset:
    """Read and check one dataset for the tasks in `options`."""
    kind, raw = read_raw(spec, ReadOptions(options.split, options.train_split))
    tasks = set(options.tasks)
    classnames = _classnames(raw, options)
    templates = _templates(raw, options, spec) if "zeroshot" in tasks else DEFAULT_TEMPLATES
    dataset = _split(raw, spec, kind, classnames, templates, tasks)
    if tasks & LABEL_TASKS and classnames is not None:
        _check_every_class_has_samples(dataset.labels, classnames, spec)
    dataset = dataclasses.replace(dataset, fetch=options.fetch)
    if raw.train is None or "linear-probe" not in tasks:
        return dataset
    train = _split(raw.train, f"{spec} ({options.train_split} split)", kind, classnames, templates, {"linear-probe"})
    return dataclasses.replace(dataset, train=dataclasses.replace(train, fetch=options.fetch))
