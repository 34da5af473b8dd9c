"""`clipline caption`: the images of shards through a captioner, in batches, into `predictions` rows.

Each sample gets one row of task `captioning`: the generated caption and the
references, the sample's own caption(s) from its `.txt` (and a `.json`
`references` or `captions` list, for datasets with several per image). The
decoding (greedy, beam, nucleus) is the row's strategy. Nucleus sampling seeds
batch i with seed + i, so a run is repeatable for the same seed and batch size.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from clipline.pipelines.caption.captioner import Captioner, checkpoint_kind, load_captioner, resolve_checkpoint
from clipline.pipelines.config import CaptionConfig, GenerateConfig
from clipline.pipelines.data.loader import check_shards, dataset_size, expand_shards
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import read_samples, sample_images
from clipline.pipelines.store.writer import ResultsWriter

log = logging.getLogger(__name__)

TASK = "captioning"
REFERENCE_KEYS = ("references", "captions")  # list fields of a sample's .json holding more reference captions


@dataclass(frozen=True)
class CaptionedSample:
    key: str
    url: str | None
    caption: str  # as generated
    references: tuple[str, ...]  # the sample's own caption(s)


@dataclass(frozen=True)
class CaptionPlan:
    checkpoint: str  # the checkpoint folder (a run folder's latest)
    shards: tuple[str, ...]
    kind: str  # the captioner kind of the checkpoint
    num_samples: int | None  # samples to caption, when sizes.json tells


def plan_captioning(config: CaptionConfig) -> CaptionPlan:
    """Check the shards, the device and that the checkpoint is a captioner, before any model loads."""
    shards = expand_shards(config.data)
    check_shards(shards)
    if config.gpu and not torch.cuda.is_available():
        raise ClipLineError("--gpu was given but no CUDA device is visible", "drop --gpu to caption on the CPU")
    checkpoint = resolve_checkpoint(config.checkpoint)
    kind = checkpoint_kind(checkpoint)
    size = dataset_size(shards)
    return CaptionPlan(checkpoint, tuple(shards), kind, min(filter(None, [size, config.limit]), default=None))


def decoding_label(options: GenerateConfig) -> str:
    """The `strategy` of a row: the decoding and its settings."""
    labels = {"greedy": "greedy", "beam": f"beam-{options.num_beams}",
              "nucleus": f"nucleus-p{options.top_p:g}-t{options.temperature:g}-seed{options.seed}"}
    return labels[options.method]


def references(texts: dict[str, bytes]) -> tuple[str, ...]:
    """The sample's caption(s): its .txt, then any .json reference list, each once."""
    found = [texts["txt"].decode("utf-8").strip()] if "txt" in texts else []
    meta = _json(texts)
    for key in REFERENCE_KEYS:
        found += [str(text).strip() for text in meta.get(key) or []]
    return tuple(dict.fromkeys(text for text in found if text))


def _json(sample: dict[str, bytes]) -> dict:
    try:
        meta = json.loads(sample["json"]) if "json" in sample else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


@dataclass(frozen=True)
class _Sample:
    key: str
    image: Image.Image
    url: str | None
    references: tuple[str, ...]


def _samples(shards: Iterable[str], limit: int | None) -> Iterator[_Sample]:
    """Every sample with a readable image, in shard order, up to `limit`; unreadable images are skipped."""
    taken = 0
    for uri in shards:
        for key, sample in read_samples(uri).items():
            images = sample_images(sample)
            try:
                image = Image.open(io.BytesIO(images[0])).convert("RGB") if images else None
            except (UnidentifiedImageError, OSError) as e:
                log.warning("skipping %s of %s: unreadable image (%s)", key, uri, e)
                continue
            if image is None:
                continue
            yield _Sample(key, image, _json(sample).get("url"), references(sample))
            taken += 1
            if taken == limit:
                return


def _batches(samples: Iterator[_Sample], size: int) -> Iterator[list[_Sample]]:
    batch = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def caption_batch(captioner: Captioner, batch: list[_Sample], options: GenerateConfig) -> list[CaptionedSample]:
    images = torch.stack([captioner.preprocess(sample.image) for sample in batch])
    captions = captioner.generate(images, options)
    return [CaptionedSample(s.key, s.url, caption, s.references) for s, caption in zip(batch, captions, strict=True)]


def prediction_rows(run_id: str, checkpoint: str, config: CaptionConfig,
                    captioned: list[CaptionedSample]) -> list[dict]:
    common = {"run_id": run_id, "checkpoint": checkpoint, "dataset": config.data, "task": TASK,
              "strategy": decoding_label(config.generate)}
    return [{**common, "key": c.key, "caption": c.caption, "references": list(c.references)} for c in captioned]


def caption_shards(plan: CaptionPlan, config: CaptionConfig, run_id: str) -> list[CaptionedSample]:
    """Caption every sample (up to the limit) in batches, writing each batch's rows to the store."""
    captioner = load_captioner(plan.checkpoint, "cuda" if config.gpu else "cpu")
    captioned: list[CaptionedSample] = []
    with ResultsWriter(config.store) as writer, tqdm(total=plan.num_samples, unit="image", mininterval=2) as bar:
        for number, batch in enumerate(_batches(_samples(plan.shards, config.limit), config.batch_size)):
            options = config.generate.model_copy(update={"seed": config.generate.seed + number})
            done = caption_batch(captioner, batch, options)
            writer.append("predictions", prediction_rows(run_id, plan.checkpoint, config, done))
            captioned += done
            bar.update(len(done))
    log.info("captioned %d samples of %s with %s", len(captioned), config.data, plan.checkpoint)
    return captioned
