"""Every config is declared here, once, as a pydantic model.

Prefect validates these as flow parameters, and the CLI builds its options
from the same fields (each `description` becomes the `--help` text), so a
setting is named, typed, defaulted and documented in one place.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines import storage

HOME_ENV = "CLIPLINE_HOME"
DEFAULT_HOME = "./.clipline"


def home_uri() -> str:
    """The folder (or s3:// prefix) that holds data, checkpoints and results by default."""
    return os.environ.get(HOME_ENV) or DEFAULT_HOME


def default_results_uri() -> str:
    return storage.absolute(os.environ.get("CLIPLINE_RESULTS") or storage.join(home_uri(), "results"))


class Config(BaseModel):
    """Base for every config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _valid_uri(value: str) -> str:
    storage.split_protocol(value)  # raises ClipLineError (a ValueError) naming the URI
    return value


class StoreConfig(Config):
    """Where results go and how they are buffered."""

    results_uri: str = Field(
        default_factory=default_results_uri,
        description="Results store location (path or s3://). Default: $CLIPLINE_RESULTS or $CLIPLINE_HOME/results.",
    )
    flush_rows: int = Field(
        default=5000, ge=1, description="Rows buffered per table before a Parquet file is written."
    )

    @field_validator("results_uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        return storage.absolute(value)


class ReaderConfig(Config):
    """The input URL list and how it is cut into shards."""

    url_list_uri: str = Field(
        description="URL list: a file or a folder of files (parquet, csv, tsv, jsonl, txt; .gz allowed), "
                    "local or s3://.",
        json_schema_extra={"positional": "URL_LIST"},
    )
    input_format: Literal["auto", "parquet", "csv", "tsv", "jsonl", "txt"] = Field(
        default="auto", description="Input format; auto picks it from each file's extension.")
    url_col: str = Field(default="url", description="Column holding the URL.")
    caption_col: str | None = Field(default="caption", description="Column holding the caption (none: no captions).")
    samples_per_shard: int = Field(default=10000, ge=1, description="Input rows per output shard.")

    _check_uri = field_validator("url_list_uri")(_valid_uri)


class FetchConfig(Config):
    """How each URL is downloaded, and what the crawler refuses."""

    threads_per_worker: int = Field(default=64, ge=1, description="Concurrent downloads per shard worker.")
    per_host_concurrency: int = Field(default=16, ge=1, description="Concurrent downloads from one host, per worker.")
    timeout_s: float = Field(default=10.0, gt=0, description="Total time limit for one download, retries and "
                             "redirects included (not just one socket read), in seconds.")
    max_bytes: int = Field(default=20 * 2**20, ge=1, description="Largest body accepted, in bytes.")
    max_redirects: int = Field(default=5, ge=0, description="Redirects followed before giving up.")
    retries: int = Field(default=2, ge=0, description="Retries on timeouts, 429 and 5xx (never on other 4xx).")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="First retry delay; doubles each retry. "
                                   "A Retry-After header overrides it.")
    user_agent_token: str = Field(default="clipline", description="Crawler name sent in the User-Agent and matched "
                                  "in X-Robots-Tag (e.g. 'clipline: noai').")
    respect_opt_out: bool = Field(default=True, description="Skip images whose X-Robots-Tag opts out.")
    opt_out_directives: list[str] = Field(
        default=["noai", "noimageai", "noindex", "noimageindex"],
        description="X-Robots-Tag directives that mean 'do not store'.")
    allow_private_networks: bool = Field(
        default=False, description="Allow hosts that resolve to private, loopback, link-local or reserved "
                                   "addresses (off by default so a crawl cannot reach internal services).")
    allowed_networks: list[str] = Field(
        default=[], description="CIDR ranges exempt from the private-address guard, e.g. 127.0.0.0/8 for a "
                                "local mirror, while the rest (cloud metadata at 169.254.169.254) stays refused.")

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as e:
                raise ValueError(f"not a CIDR range: {network!r} (write e.g. 127.0.0.0/8)") from e
        return value


class ImageConfig(Config):
    """How images are checked, resized and encoded (img2dataset's options and meanings)."""

    image_size: int = Field(default=256, ge=1, description="Target size in pixels.")
    resize_mode: Literal["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"] = Field(
        default="border", description="no: keep size; border: fit the longer side, pad to a square; keep_ratio: "
        "shorter side to image_size; keep_ratio_largest: longer side to image_size; center_crop: shorter side "
        "to image_size, then crop the centre square.")
    resize_only_if_bigger: bool = Field(default=False, description="Never upscale.")
    encode_format: Literal["jpg", "png", "webp"] = Field(default="jpg", description="Stored image format.")
    encode_quality: int = Field(default=95, ge=0, le=100, description="JPEG/WebP quality (PNG: compression 0-9).")
    skip_reencode: bool = Field(default=True, description="Store the original bytes when nothing would change.")
    min_image_size: int = Field(default=0, ge=0, description="Reject images whose shorter side is smaller.")
    max_aspect_ratio: float | None = Field(default=None, gt=0, description="Reject images whose longer/shorter "
                                           "side ratio is larger.")
    max_pixels: int = Field(default=89_478_485, ge=1, description="Reject images with more pixels, read from the "
                            "header before decoding (decompression bombs). Pillow's own default.")


class IngestConfig(Config):
    """Crawl a URL list into WebDataset shards."""

    reader: ReaderConfig
    output_uri: str = Field(description="Output dataset folder (path or s3://).",
                            json_schema_extra={"flag": "--out"})
    workers: int = Field(default=2, ge=1, description="Shards crawled at once (Ray tasks).")
    retry_failed: bool = Field(default=False, description="Re-fetch only the failed samples of committed shards "
                               "and rewrite those shards atomically.")
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    _check_uri = field_validator("output_uri")(_valid_uri)


class VideoFetchConfig(FetchConfig):
    """How each video is downloaded: FetchConfig's options, with room for bodies tens of MB large."""

    threads_per_worker: int = Field(default=16, ge=1, description="Concurrent downloads per shard worker.")
    timeout_s: float = Field(default=60.0, gt=0, description="Total time limit for one download, retries and "
                             "redirects included (not just one socket read), in seconds.")
    max_bytes: int = Field(default=200 * 2**20, ge=1, description="Largest body accepted, in bytes.")


class VideoConfig(Config):
    """Which clip of each video is kept and how frames are sampled from it."""

    num_frames: int = Field(default=8, ge=1, description="Frames per clip, at the centres of num_frames equal "
                            "segments of the clip (CLIP4Clip's uniform sampling).")
    fps: float | None = Field(default=None, gt=0, description="Sample this many frames per second of clip "
                              "instead of num_frames.")
    start_col: str | None = Field(default="start", description="Column with the clip's start in seconds (optional "
                                  "per row; a missing column or value means the video's start).")
    end_col: str | None = Field(default="end", description="Column with the clip's end in seconds (optional per "
                                "row; missing means the video's end).")
    max_duration_s: float = Field(default=600.0, gt=0, description="Reject clips longer than this, in seconds.")
    max_resolution: int = Field(default=2160, ge=1, description="Reject videos whose shorter side is larger (the "
                                "1080 of 1080p), read from the stream header before any frame is decoded.")
    frame_access: Literal["auto", "seek", "sequential"] = Field(
        default="auto", description="auto: seek only where it skips frames (keyframe index), else decode on; "
        "seek: seek to the keyframe before every frame; sequential: one decode pass from the clip's start.")
    keep_video: bool = Field(default=False, description="Also store the clip: the downloaded bytes without a "
                             "window, else the window remuxed (no re-encoding) from the keyframe before its start.")


class VideoIngestConfig(IngestConfig):
    """Crawl a video-text URL list into WebDataset shards of sampled frames (image: how frames are resized)."""

    fetch: VideoFetchConfig = Field(default_factory=VideoFetchConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)


class TrainConfig(Config):
    """Train a CLIP-style model on WebDataset shards with Ray Train."""

    data: str = Field(description="Training shards: brace expansion and several sources joined with '::', local or "
                      "s3://, e.g. 'data/{00000..00009}.tar::s3://b/more/{00000..00003}.tar'.")
    output_uri: str = Field(description="Run location for checkpoints (path or s3://).",
                            json_schema_extra={"flag": "--out"})
    model: str = Field(default="clipline-tiny", description="An open_clip model name, a clipline config "
                       "(pipelines/models/configs), or a path to an open_clip JSON model config.")
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps to train (or give --epochs).")
    epochs: int | None = Field(default=None, ge=1, description="Passes over the data (needs sizes.json beside the "
                               "shards or --samples-per-epoch).")
    samples_per_epoch: int | None = Field(default=None, ge=1, description="Samples in one epoch when the shards "
                                          "have no sizes.json.")
    batch_size: int = Field(default=256, ge=1, description="Samples per worker per step (global batch = batch size "
                            "x workers x accum freq).")
    lr: float = Field(default=5e-4, gt=0, description="Peak learning rate (AdamW).")
    warmup: int = Field(default=500, ge=0, description="Linear warm-up steps before the cosine decay.")
    weight_decay: float = Field(default=0.2, ge=0, description="AdamW weight decay (never on gains, biases and the "
                                "logit scale).")
    beta1: float = Field(default=0.9, description="AdamW beta1.")
    beta2: float = Field(default=0.98, description="AdamW beta2 (CLIP's value).")
    eps: float = Field(default=1e-6, description="AdamW epsilon (CLIP's value).")
    workers: int = Field(default=1, ge=0, description="Ray Train workers; 0 runs the loop in this process.")
    gpu: bool = Field(default=False, description="One CUDA device per worker.")
    precision: Literal["fp32", "bf16", "amp"] = Field(default="fp32", description="fp32, or bf16/amp autocast "
                                                      "(GPU).")
    compile: bool = Field(default=False, description="torch.compile the model (GPU).")
    accum_freq: int = Field(default=1, ge=1, description="Gradient accumulation: steps of features gathered before "
                            "one optimizer step (open_clip's --accum-freq).")
    loss: Literal["clip", "siglip"] = Field(default="clip", description="open_clip's ClipLoss or SigLipLoss.")
    lock_image: bool = Field(default=False, description="Freeze the image tower (LiT); needs --init.")
    init: str | None = Field(default=None, description="Start from these weights: a clipline checkpoint or a "
                             "local-dir: folder.")
    resume: str | None = Field(default=None, description="'latest' to continue this run location's newest "
                               "checkpoint, 'auto' to continue it if there is one (else start), or a checkpoint "
                               "path.")
    checkpoint_every: int = Field(default=1000, ge=1, description="Checkpoint every N steps (and at the end).")
    log_every: int = Field(default=10, ge=1, description="Write training metrics every N steps.")
    val_data: str | None = Field(default=None, description="Validation shards: loss and in-batch recall@1 at each "
                                 "checkpoint.")
    val_batches: int = Field(default=4, ge=1, description="Validation batches evaluated per checkpoint.")
    resampled: bool = Field(default=False, description="Sample shards with replacement (each worker its own stream) "
                            "instead of splitting them between workers.")
    shuffle: int = Field(default=1000, ge=0, description="Sample shuffle buffer per data worker (0: read in order).")
    augment: bool = Field(default=True, description="open_clip's training augmentation (random resized crop).")
    data_workers: int = Field(default=1, ge=0, description="DataLoader processes per training worker.")
    max_failures: int = Field(default=2, ge=0, description="Worker failures recovered from the last checkpoint "
                              "before the run fails.")
    seed: int = Field(default=0, description="Seed for model init, shuffling and augmentation.")
    store: StoreConfig = Field(default_factory=StoreConfig)

    _check_uri = field_validator("output_uri")(_valid_uri)

    # Ray Train workers run in their own working directory: relative paths would resolve there.
    @field_validator("output_uri", "init")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute(value)

    @field_validator("resume")
    @classmethod
    def _absolute_resume(cls, value: str | None) -> str | None:
        return value if value in (None, "latest", "auto") else storage.absolute(value)

    @field_validator("data", "val_data")
    @classmethod
    def _absolute_sources(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute_sources(value)

    @model_validator(mode="after")
    def _check_combinations(self) -> TrainConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps and epochs")
        if self.lock_image and not self.init:
            raise ValueError("lock_image needs init: the image tower to freeze")
        if self.precision != "fp32" and not self.gpu:
            raise ValueError(f"precision {self.precision} needs gpu; use fp32 on CPU")
        return self


TemporalHead = Literal["mean", "lstm", "transformer"]  # the keys of pipelines.models.temporal.TEMPORAL_HEADS


class VideoTrainConfig(TrainConfig):
    """Train a video-text model on video shards: a CLIP image tower on each frame, learned temporal position
    embeddings and a temporal head over the frames, against the CLIP text tower (CLIP4Clip)."""

    head: TemporalHead = Field(
        default="transformer", description="Temporal head over the frame embeddings: mean (mean pooling, no "
        "parameters: blind to frame order), lstm (an LSTM, residual), transformer (a Transformer encoder, residual).")
    head_layers: int = Field(default=2, ge=1, description="Layers of the lstm or transformer head.")
    num_frames: int = Field(default=8, ge=1, le=64, description="Frames per clip fed to the model; a clip stored "
                            "with another count is sampled uniformly (frames repeat when it has fewer).")
    freeze_image_tower: bool = Field(default=False, description="Train only the temporal head, the projections and "
                                     "the temperature; the CLIP towers stay fixed.")
    image_lr_scale: float = Field(default=1e-3, gt=0, le=1, description="Learning rate of the CLIP towers as a "
                                  "fraction of --lr when they train (CLIP4Clip's coef_lr).")
    augment: bool = Field(default=False, description="Not available for video: one random crop per clip is not "
                          "implemented, and per-frame crops would jitter the clip. Must stay off.")
    val_data: str | None = Field(default=None, description="Validation video shards: loss, text->video and "
                                 "video->text recall@1/5/10 and median rank at each checkpoint.")

    @model_validator(mode="after")
    def _check_video(self) -> VideoTrainConfig:
        if self.lock_image:
            raise ValueError("lock_image is for image-text training; use freeze_image_tower")
        if self.augment:
            raise ValueError("augment is not available for video training; leave it off")
        return self


def default_cache_dir() -> str:
    """A local folder for caches clipline rebuilds when missing: $CLIPLINE_CACHE, else $CLIPLINE_HOME/cache when
    the home is local, else ~/.cache/clipline (memory-mapped files need a local disk)."""
    if os.environ.get("CLIPLINE_CACHE"):
        return os.environ["CLIPLINE_CACHE"]
    if storage.is_local(home_uri()):
        return storage.join(home_uri(), "cache")
    return os.path.join(os.path.expanduser("~"), ".cache", "clipline")


class TransportConfig(Config):
    """How one Wasserstein-1 distance between two point sets is computed (pipelines/distance/wasserstein.py)."""

    method: Literal["auto", "exact", "sliced", "sinkhorn"] = Field(
        default="auto", description="exact: network simplex on the full cost matrix (n x n float64); sliced: mean "
        "1-D W1 over random directions (a lower bound of exact); sinkhorn: entropic OT (an upper bound); auto: "
        "exact up to max_exact_samples points per side, sliced above.")
    max_exact_samples: int = Field(default=2500, ge=1, description="auto: largest side solved exactly (2,500 "
                                   "points a side in 512 dims: about 2 s of CPU and 200 MB; the time grows about "
                                   "n^2.5, 5,000 took 11 s and 1 GB; docs/benchmarks.md).")
    projections: int = Field(default=1024, ge=1, description="sliced: random unit directions averaged.")
    sinkhorn_reg: float = Field(default=0.05, gt=0, description="sinkhorn: entropic regularisation as a fraction "
                                "of the median pairwise cost (scale-free); smaller is closer to exact but slower.")


class FastTextConfig(Config):
    """Caption embeddings from fastText word vectors (pipelines/distance/text.py)."""

    model_uri: str | None = Field(default=None, description="A fastText .bin model or a .vec/.vec.gz text file "
                                  "(e.g. wiki-news-300d-1M-subword.vec); a caption's vector is the mean of its "
                                  "words' vectors. None: train a small model on the captions being compared (and "
                                  "record that).", json_schema_extra={"flag": "--text-model"})
    cache_dir: str = Field(default_factory=default_cache_dir, description="Local folder for the memory-mapped "
                           "copy of a .vec file (parsed once, keyed by its sha256) and for remote .bin files.")
    dim: int = Field(default=64, ge=2, description="Trained model: vector size.")
    epoch: int = Field(default=10, ge=1, description="Trained model: passes over the captions.")
    bucket: int = Field(default=20_000, ge=1, description="Trained model: subword hash buckets; fastText's 2M "
                        "default makes a .bin of hundreds of MB for a few thousand captions.")
    threads: int = Field(default=2, ge=1, description="Trained model: training threads (at least 11 are started: "
                         "fastText initialises its weights in one tenth per thread; see distance/text.py).")

    @field_validator("model_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        return value if value is None else _valid_uri(value)

    @field_validator("cache_dir")
    @classmethod
    def _check_local(cls, value: str) -> str:
        if not storage.is_local(value):
            raise ValueError(f"cache_dir must be a local folder (files there are memory-mapped), got {value!r}")
        return value


class DistanceConfig(Config):
    """Wasserstein-1 distances between datasets in one embedding space, with self baselines and intervals."""

    num_samples: int | None = Field(default=None, ge=1, description="Points drawn from each dataset for every "
                                    "distance (the same n for all pairs: W1 between samples shrinks as n grows). "
                                    "Each dataset needs 2n points, for its split-half self baseline. None: the "
                                    "largest n every dataset allows.")
    num_resamples: int = Field(default=0, ge=0, description="Fresh subsamples per distance for a percentile "
                               "interval (ci_low, ci_high); 0: no interval.", json_schema_extra={"flag": "--bootstrap"})
    ci_level: float = Field(default=0.95, gt=0, lt=1, description="Interval coverage.")
    seed: int = Field(default=0, description="Seed for subsamples and sliced directions.")
    transport: TransportConfig = Field(default_factory=TransportConfig)
    fasttext: FastTextConfig = Field(default_factory=FastTextConfig)


EMBEDDING_SPACES = ("clip_image", "fasttext_text")


class DatasetDistanceConfig(Config):
    """Embed a seeded sample of each dataset (CLIP image features of sampled frames, fastText caption vectors)
    and compute Wasserstein-1 distances between every pair, with split-half self baselines."""

    datasets: list[str] = Field(min_length=2, description="Datasets as NAME=SHARDS: clipline image or video shards "
                                "(a folder of .tar, a .tar, or a brace pattern; local or s3://).")
    samples: int = Field(default=1000, ge=2, description="Items (images or videos) drawn per dataset with --seed; a "
                         "dataset with fewer is used whole. Distances compare n = half of the smallest sample per "
                         "dataset (the other half is its self baseline) unless --num-samples says otherwise.")
    frames_per_video: int = Field(default=1, ge=1, description="Video samples: random frames of each video "
                                  "embedded (each one a point of the image space).")
    spaces: list[Literal["clip_image", "fasttext_text"]] = Field(
        default=list(EMBEDDING_SPACES), min_length=1, description="Embedding spaces compared: clip_image (needs "
        "--image-encoder) and fasttext_text.", json_schema_extra={"flag": "--space"})
    image_encoder: str | None = Field(default=None, description="The CLIP image tower: a clipline checkpoint "
                                      "(RUN/checkpoints/step-N), a run folder (its latest checkpoint), a local-dir: "
                                      "folder, or an open_clip model name with --pretrained.")
    pretrained: str | None = Field(default=None, description="Weights for an --image-encoder given as an open_clip "
                                   "model name (a file path).")
    batch_size: int = Field(default=64, ge=1, description="Images embedded per forward pass.")
    workers: int = Field(default=0, ge=0, description="Datasets embedded at once as Ray tasks, the CPUs split "
                         "between them; 0 embeds them one after another in this process.")
    gpu: bool = Field(default=False, description="Embed on the CUDA device.")
    top_words: int = Field(default=20, ge=0, description="Most frequent caption words stored per dataset (English "
                           "stop words left out).")
    output_uri: str | None = Field(default=None, description="Folder for the heatmap PNGs (default: "
                                   "distances/RUN_ID beside the results store).", json_schema_extra={"flag": "--out"})
    distance: DistanceConfig = Field(default_factory=DistanceConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("datasets")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        names = []
        for item in value:
            name, sep, spec = item.partition("=")
            if not sep or not name.strip() or not spec.strip():
                raise ValueError(f"dataset {item!r} is not NAME=SHARDS (e.g. laion=data/laion/{{00000..00009}}.tar)")
            storage.split_protocol(spec.split("::")[0].strip())
            names.append(name.strip())
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dataset name {repeated[0]!r} is given twice; names must be unique")
        # Ray workers may not share this working directory: local paths are made absolute.
        return [f"{name}={storage.absolute_sources(item.partition('=')[2].strip())}"
                for name, item in zip(names, value, strict=True)]

    @field_validator("output_uri")
    @classmethod
    def _check_out(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute(value)

    @model_validator(mode="after")
    def _check_spaces(self) -> DatasetDistanceConfig:
        if "clip_image" in self.spaces and not self.image_encoder:
            raise ValueError("the clip_image space needs --image-encoder CKPT (or compare captions only with "
                             "--space fasttext_text)")
        return self

    def named_datasets(self) -> dict[str, str]:
        """Dataset name -> shard spec, in the order given."""
        return dict(item.split("=", 1) for item in self.datasets)


PROMPT_STRATEGIES = ("single", "ensemble", "vote")


class EvalConfig(Config):
    """Evaluate checkpoints on datasets: zero-shot classification, retrieval and linear probes (clip_benchmark's
    metrics), every (checkpoint, dataset) pair from one image feature pass."""

    checkpoints: list[str] = Field(
        min_length=1, description="Checkpoints: a clipline checkpoint folder (RUN/checkpoints/step-N), a run folder "
        "(its latest checkpoint), a local-dir: folder, or an open_clip model name with --pretrained.",
        json_schema_extra={"flag": "--checkpoint"})
    pretrained: str | None = Field(default=None, description="Weights (a file path or open_clip pretrained tag) for "
                                   "checkpoints given as open_clip model names.")
    datasets: list[str] = Field(
        min_length=1, description="Datasets: clipline shards (a folder of .tar, a .tar or a brace pattern), "
        "clip_benchmark's WebDataset layout (ROOT with ROOT/test/nshards.txt), a folder with one subfolder per "
        "class, or a CSV of path_or_url,label. Prefix KIND: (shards, clip-benchmark, folder, csv) to force a reader.",
        json_schema_extra={"flag": "--data"})
    tasks: list[Literal["zeroshot", "retrieval", "linear-probe"]] = Field(
        default=["zeroshot"], min_length=1, description="Tasks: zeroshot, retrieval, linear-probe (several share "
        "one image feature pass).", json_schema_extra={"flag": "--task"})
    classnames_uri: str | None = Field(default=None, description="Class names, one per line, in label order "
                                       "(default: the dataset's own, or its folder names).",
                                       json_schema_extra={"flag": "--classnames"})
    templates_uri: str | None = Field(default=None, description="Prompt templates, one per line, each with {c} for "
                                      "the class name (default: the dataset's own, else CLIP's 7 ImageNet "
                                      "templates).", json_schema_extra={"flag": "--templates"})
    strategy: Literal["single", "ensemble", "vote", "all"] = Field(
        default="ensemble", description="Zero-shot prompts: single (the first template), ensemble (mean of the "
        "normalized template embeddings, as CLIP and clip_benchmark), vote (each template predicts, majority wins, "
        "ties to the higher summed score), all (the three, from one feature pass).")
    split: str = Field(default="test", description="clip_benchmark layout: the split evaluated (ROOT/SPLIT/).")
    probe_split: str = Field(default="train", description="Linear probe: the dataset's own training split "
                             "(ROOT/SPLIT/, clip_benchmark layout) when present; else a seeded stratified split.")
    probe_test_fraction: float = Field(default=0.3, gt=0, lt=1, description="Linear probe without a training "
                                       "split: fraction of each class held out for testing.")
    probe_c: float = Field(default=10.0, gt=0, description="Linear probe: inverse L2 strength of the logistic "
                           "regression (sklearn's C) on the normalized image features.")
    probe_max_iter: int = Field(default=1000, ge=1, description="Linear probe: L-BFGS iterations.")
    recall_k: list[int] = Field(default=[1, 5, 10], min_length=1, description="Retrieval: the k of recall@k "
                                "(k is capped at the number of candidates).")
    batch_size: int = Field(default=64, ge=1, description="Images (and prompts) embedded per forward pass.")
    workers: int = Field(default=0, ge=0, description="(checkpoint, dataset) pairs evaluated at once as Ray tasks, "
                         "the CPUs split between them; 0 evaluates them one after another in this process.")
    gpu: bool = Field(default=False, description="Embed on the CUDA device.")
    seed: int = Field(default=0, description="Seed of the linear probe's split and solver.")
    plots_uri: str | None = Field(default=None, description="Where confusion-matrix PNGs go (default: a plots "
                                  "folder beside the results store).", json_schema_extra={"flag": "--plots-dir"})
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("classnames_uri", "templates_uri", "plots_uri")
    @classmethod
    def _check_optional_uri(cls, value: str | None) -> str | None:
        return value if value is None else _valid_uri(value)

    @field_validator("recall_k")
    @classmethod
    def _check_recall_k(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"recall_k must be positive, got {value}")
        return list(dict.fromkeys(value))

    @field_validator("tasks", "checkpoints", "datasets")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # a repeated name would evaluate (and store) the same thing twice

    def strategies(self) -> list[str]:
        """The prompt strategies to run: `all` expands to every one."""
        return list(PROMPT_STRATEGIES) if self.strategy == "all" else [self.strategy]


class ReportConfig(Config):
    """Render the results store as one static, self-contained HTML page (charts inline, no network)."""

    output_uri: str = Field(default="report.html", validate_default=True, description="Where the HTML page goes "
                            "(path or s3://).", json_schema_extra={"flag": "--out"})
    max_runs: int = Field(default=10, ge=1, description="Training runs drawn in the curves, newest first.")
    max_confusions: int = Field(default=6, ge=1, description="Confusion matrices drawn (latest classification "
                                "evaluations first).")
    max_examples: int = Field(default=6, ge=1, description="Retrieval examples shown with thumbnails, per "
                              "evaluated (checkpoint, dataset); at most 8 (sql/queries/retrieval_examples.sql).")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("output_uri")
    @classmethod
    def _check_out(cls, value: str) -> str:
        return storage.absolute(_valid_uri(value))


def default_pipeline_workdir() -> str:
    return storage.absolute(storage.join(home_uri(), "pipeline"))


class PipelineConfig(Config):
    """The whole pipeline as one DAG: ingest (training images, held-out images, videos) -> train a CLIP (and a
    video head) -> evaluate zero-shot and retrieval on the held-out images -> distances between the datasets ->
    the HTML report. Datasets, runs and the report go under `workdir`; results to the store."""

    image_url_list: str = Field(description="Image-text URL list to train on (any format `clipline ingest` reads).")
    eval_url_list: str = Field(description="Held-out image URL list with a label column: zero-shot classification "
                               "and retrieval are measured on it.")
    video_url_list: str | None = Field(default=None, description="Video-text URL list: ingested, given a temporal "
                                       "head on the trained CLIP, and compared with the image datasets.")
    classnames: list[str] = Field(min_length=2, description="Class names in label order (the eval list's label "
                                  "column holds indices into it).")
    label_col: str = Field(default="label", description="Column of the eval list holding the class index.")
    workdir: str = Field(default_factory=default_pipeline_workdir, description="Folder (or s3:// prefix) for the "
                         "datasets, runs and report of the pipeline.")
    allowed_networks: list[str] = Field(default=[], description="CIDR ranges the crawler may reach despite the "
                                        "private-address guard (e.g. 127.0.0.0/8 for a local mirror).")
    image_size: int = Field(default=64, ge=8, description="Stored image size (pixels).")
    samples_per_shard: int = Field(default=1000, ge=1, description="Input rows per shard.")
    ingest_workers: int = Field(default=2, ge=1, description="Shards crawled at once per ingest.")
    model: str = Field(default="clipline-tiny", description="Model to train (open_clip name or clipline config).")
    steps: int = Field(default=300, ge=1, description="CLIP training steps.")
    batch_size: int = Field(default=128, ge=2, description="CLIP training batch per worker.")
    lr: float = Field(default=1e-3, gt=0, description="Peak learning rate.")
    warmup: int = Field(default=20, ge=0, description="Warm-up steps.")
    train_workers: int = Field(default=0, ge=0, description="Ray Train workers (0: in the flow's process).")
    video_steps: int = Field(default=30, ge=1, description="Video head training steps (on the trained CLIP).")
    video_head: Literal["mean", "lstm", "transformer"] = Field(default="transformer", description="Temporal head.")
    num_frames: int = Field(default=4, ge=1, description="Frames per clip (ingest and video training).")
    distance_samples: int = Field(default=500, ge=2, description="Items drawn per dataset for the distances.")
    text_model: str | None = Field(default=None, description="fastText .bin/.vec for caption vectors (none: train "
                                   "one on the captions).")
    seed: int = Field(default=0, description="Seed for training, sampling and distances.")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("workdir")
    @classmethod
    def _check_workdir(cls, value: str) -> str:
        return storage.absolute(value)

    @field_validator("image_url_list", "eval_url_list", "video_url_list", "text_model")
    @classmethod
    def _check_inputs(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute(value)
