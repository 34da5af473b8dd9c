"""The pipeline's stages: every stage's config built from one PipelineConfig, and the checks run before any starts.

A stage is a flow (ingest_images, ingest_videos, curate, train_clip,
train_video, evaluate, dataset_distance) with its own config; `STAGE_DEPENDS` is the DAG.
All configs are built (and so validated) up front, so a bad parameter fails
before the first stage, and `preflight` checks that storage and the Ray
cluster answer. The paths of one pipeline's datasets and runs are fixed by its
workdir, which is what lets a rerun find (and skip) the stages that finished.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass

from pydantic import BaseModel

from clipline.pipelines import storage
from clipline.pipelines.config import (
    CaptionConfig,
    CocaTrainConfig,
    CurateConfig,
    DatasetDistanceConfig,
    EvalConfig,
    FetchConfig,
    ImageConfig,
    IngestConfig,
    PipelineConfig,
    ReaderConfig,
    TrainConfig,
    VideoConfig,
    VideoFetchConfig,
    VideoIngestConfig,
    VideoTrainConfig,
)
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.train import checkpoint as ckpt

log = logging.getLogger(__name__)

RAY_CONNECT_TIMEOUT_S = 5
CLASSNAMES_FILE = "classnames.txt"  # in the workdir: the held-out set's class names, in label order

# stage -> the stages it waits for
STAGE_DEPENDS: dict[str, tuple[str, ...]] = {
    "ingest_images": (),
    "ingest_held_out": (),
    "ingest_videos": (),
    "curate": ("ingest_images", "ingest_held_out"),
    "train_clip": ("ingest_images", "curate"),  # curate when the pipeline has that stage
    "evaluate": ("train_clip", "ingest_held_out"),
    "train_video": ("train_clip", "ingest_videos"),
    "dataset_distance": ("train_clip", "ingest_images", "ingest_held_out", "ingest_videos"),
    "train_coca": ("ingest_images", "curate"),  # with PipelineConfig.caption; on the curated images with curate
    "caption": ("train_coca", "ingest_held_out"),
}


@dataclass(frozen=True)
class Layout:
    """Where a pipeline's datasets, runs and report live under its workdir."""

    workdir: str
    curated: str | None = None  # the curated dataset's name, when the pipeline curates

    @classmethod
    def of(cls, config: PipelineConfig) -> Layout:
        """The curated dataset is named by the curate block's hash: other options give another dataset (and
        training runs), so a rerun never resumes a run on data it was not trained on."""
        if config.curate is None:
            return cls(config.workdir)
        digest = hashlib.sha256(config.curate.model_dump_json().encode()).hexdigest()[:8]
        return cls(config.workdir, f"curated-{digest}")

    def dataset(self, name: str) -> str:
        return storage.join(self.workdir, "datasets", name)

    def run(self, name: str) -> str:
        return storage.join(self.workdir, "runs", name)

    @property
    def training_data(self) -> str:
        return self.dataset(self.curated or "images")

    def training_run(self, base: str) -> str:
        """A training run's folder: runs on curated data carry the curated dataset's name."""
        return self.run(f"{base}-{self.curated}" if self.curated else base)

    @property
    def report(self) -> str:
        return storage.join(self.workdir, "report.html")


def _ingest(config: PipelineConfig, url_list: str, output: str) -> IngestConfig:
    return IngestConfig(
        reader=ReaderConfig(url_list_uri=url_list, samples_per_shard=config.samples_per_shard),
        output_uri=output, workers=config.ingest_workers, store=config.store,
        fetch=FetchConfig(allowed_networks=config.allowed_networks),
        image=ImageConfig(image_size=config.image_size, resize_mode="border"))


def _curate(config: PipelineConfig, layout: Layout) -> CurateConfig:
    options = config.curate.model_dump(exclude={"decontaminate_held_out"})
    if config.curate.decontaminate_held_out:
        options["decontaminate"] = [*options["decontaminate"], f"held-out={layout.dataset('held-out')}"]
    return CurateConfig(data=layout.dataset("images"), output_uri=layout.dataset(layout.curated),
                        scores_uri=storage.join(config.workdir, "curate-scores"),
                        samples_per_shard=config.samples_per_shard, store=config.store, **options)


def _train(config: PipelineConfig, layout: Layout) -> TrainConfig:
    return TrainConfig(data=layout.training_data, output_uri=layout.training_run("clip"), model=config.model,
                       steps=config.steps, batch_size=config.batch_size, lr=config.lr, warmup=config.warmup,
                       workers=config.train_workers, checkpoint_every=max(config.steps // 2, 1), resampled=True,
                       data_workers=1, seed=config.seed, store=config.store, resume="auto")


def _caption_stages(config: PipelineConfig, layout: Layout) -> dict[str, BaseModel]:
    """The optional captioning stages: a CoCa trained on the training images, then the held-out images captioned."""
    if config.caption is None:
        return {}
    coca = CocaTrainConfig(**{**_train(config, layout).model_dump(exclude={"loss", "store"}),
                              "output_uri": layout.training_run("coca"), "model": config.caption.model,
                              "steps": config.caption.steps, "checkpoint_every": config.caption.steps},
                           store=config.store)
    return {"train_coca": coca,
            "caption": CaptionConfig(checkpoint=coca.output_uri, data=layout.dataset("held-out"),
                                     generate=config.caption.generate, limit=config.caption.limit,
                                     store=config.store)}


def stage_configs(config: PipelineConfig) -> dict[str, BaseModel]:
    """Every stage's config, in DAG order; a stage without input (no video list) is left out."""
    layout = Layout.of(config)
    clip_run = layout.training_run("clip")
    stages: dict[str, BaseModel] = {
        "ingest_images": _ingest(config, config.image_url_list, layout.dataset("images")),
        "ingest_held_out": _ingest(config, config.eval_url_list, layout.dataset("held-out")),
        **({"curate": _curate(config, layout)} if config.curate else {}),
        "train_clip": _train(config, layout),
        "evaluate": EvalConfig(checkpoints=[clip_run], datasets=[layout.dataset("held-out")],
                               tasks=["zeroshot", "retrieval", "linear-probe"], strategy="all",
                               classnames_uri=storage.join(config.workdir, CLASSNAMES_FILE),
                               plots_uri=storage.join(config.workdir, "plots"), seed=config.seed,
                               workers=config.eval_workers, store=config.store),
    }
    distance_sets = [f"images={layout.dataset('images')}", f"held-out={layout.dataset('held-out')}"]
    if config.video_url_list:
        stages["ingest_videos"] = VideoIngestConfig(
            reader=ReaderConfig(url_list_uri=config.video_url_list, samples_per_shard=config.samples_per_shard),
            output_uri=layout.dataset("videos"), workers=config.ingest_workers, store=config.store,
            fetch=VideoFetchConfig(allowed_networks=config.allowed_networks),
            image=ImageConfig(image_size=config.image_size, resize_mode="center_crop"),
            video=VideoConfig(num_frames=config.num_frames))
        stages["train_video"] = VideoTrainConfig(
            data=layout.dataset("videos"), output_uri=layout.training_run(f"video-{config.video_head}"),
            model=config.model,
            init=ckpt.checkpoint_uri(clip_run, config.steps), steps=config.video_steps,
            batch_size=min(config.batch_size, 32), lr=config.lr,
            warmup=min(config.warmup, config.video_steps // 4), workers=0, head=config.video_head,
            num_frames=config.num_frames, freeze_image_tower=True, resampled=True, data_workers=0,
            checkpoint_every=config.video_steps, seed=config.seed, store=config.store, resume="auto")
        distance_sets.append(f"videos={layout.dataset('videos')}")
    stages["dataset_distance"] = DatasetDistanceConfig(
        datasets=distance_sets, samples=config.distance_samples, image_encoder=clip_run, store=config.store,
        workers=config.distance_workers,
        frames_per_video=config.num_frames,
        output_uri=storage.join(config.workdir, "distances"),
        distance={"seed": config.seed, "fasttext": {"model_uri": config.text_model}})
    stages.update(_caption_stages(config, layout))
    return stages


def write_classnames(config: PipelineConfig) -> str:
    """The workdir's classnames.txt, which the evaluate stage reads."""
    uri = storage.join(config.workdir, CLASSNAMES_FILE)
    storage.write_text(uri, "\n".join(config.classnames) + "\n")
    return uri


def _check_ray_address() -> None:
    address = os.environ.get("RAY_ADDRESS")
    if not address or address == "auto" or address.startswith("local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as e:
        raise ClipLineError(f"the Ray cluster at RAY_ADDRESS={address} does not answer ({e})",
                            "start the cluster, fix RAY_ADDRESS, or unset it to run on this machine") from e


def preflight(config: PipelineConfig) -> None:
    """Before any stage: the inputs exist, storage takes writes, and the Ray cluster (if any) answers."""
    for uri in filter(None, [config.image_url_list, config.eval_url_list, config.video_url_list, config.text_model]):
        if not storage.exists(uri):
            raise ClipLineError(f"{uri} does not exist", "check the pipeline's URL list and model parameters")
    storage.check_writable(config.workdir)
    storage.check_writable(config.store.results_uri)
    _check_ray_address()
