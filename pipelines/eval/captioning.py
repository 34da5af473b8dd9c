"""Captioning evaluation: a captioner writes a caption for every image, scored against the sample's references.

The references of a sample are its captions as the dataset reader lists them:
each line of its `key.txt`, then the strings of the list under `"captions"` in
its `key.json`, if any (readers.py). The metrics are clip_benchmark's
(captioning_metrics.py); the stored result's strategy is the decoding method.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

import torch

from clipline.pipelines.caption import captioner as registry
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.captioning_metrics import caption_scores
from clipline.pipelines.eval.checkpoints import CheckpointRef
from clipline.pipelines.eval.results import CaptionPredictions, EvalResult, TaskOutput

log = logging.getLogger(__name__)


def _register_kinds() -> None:
    import clipline.pipelines.caption.nearest  # noqa: F401  (kinds register themselves on import)


def captioner_kind_of(uri: str) -> str | None:
    """The captioner kind whose format recognises the folder `uri`, or None."""
    _register_kinds()
    try:
        return registry.captioner_kind(uri)
    except (ClipLineError, OSError):
        return None


def load_captioner_ref(ref: CheckpointRef, gpu: bool = False) -> registry.Captioner:
    """The checkpoint as a captioner; a CLIP-only checkpoint is a ClipLineError saying so."""
    from clipline.pipelines.eval.features import _device

    _register_kinds()
    device = _device(gpu)
    load_captioner = getattr(registry, "load_captioner", None)  # the registry's own loader, once it has one
    if load_captioner is not None and ref.kind != "open_clip":
        return load_captioner(ref.uri, device)
    kind = captioner_kind_of(ref.uri) if ref.kind != "open_clip" else None
    if kind is None:
        raise ClipLineError(f"checkpoint {ref.label} is not a captioner (known kinds: "
                            f"{', '.join(registry.CAPTIONER_FORMATS)})",
                            "give a CoCa or ClipCap checkpoint, or a `clipline caption-baseline` folder")
    return registry.CAPTIONER_FORMATS[kind].load(ref.uri, device)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def generate_captions(context, options: GenerateConfig) -> tuple[list[int], list[str], int]:
    """(dataset indices captioned, their captions, images skipped as unreadable), in dataset order."""
    from clipline.pipelines.eval.context import _Decoded

    captioner, dataset = context.captioner, context.dataset
    started, decoded, captions = time.monotonic(), _Decoded(), []
    for batch in _batches(decoded.images(dataset), context.batch_size):
        pixels = torch.stack([captioner.preprocess(image) for image in batch])
        captions.extend(captioner.generate(pixels, options))
    if not decoded.kept:
        raise ClipLineError(f"none of the {len(dataset)} images of {dataset.name} could be read",
                            "check the image files (see the warnings above)")
    log.info("captioned %d images of %s in %.1f s (%d skipped)", len(captions), dataset.name,
             time.monotonic() - started, decoded.skipped)
    return decoded.kept, captions, decoded.skipped


def evaluate_captioning(context, options: GenerateConfig) -> list[TaskOutput]:
    indices, captions, skipped = generate_captions(context, options)
    dataset = context.dataset
    references = [list(dataset.captions[i]) for i in indices]
    scores = caption_scores(captions, references)
    for name, reason in scores.unavailable.items():
        log.warning("captioning: %s not computed: %s", name, reason)
    result = EvalResult(context.checkpoint.label, dataset.name, "captioning", options.method, scores.metrics,
                        len(indices), skipped, unavailable=scores.unavailable)
    return [TaskOutput(result, CaptionPredictions([dataset.keys[i] for i in indices], captions, references))]
