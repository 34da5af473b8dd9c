"""Configs of the image and video crawls."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from clipline.pipelines.config.base import Config, StoreConfig, _valid_uri


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
    keep_partial_videos: bool = Field(
        default=False, description="Keep a truncated video (frames end well before the duration its container "
        "declares) as a success: targets past its last frame take that frame, and its JSON says `partial`. "
        "Default: such a video is a failed sample, 'truncated video: declared D s, decodable d s'.")


class VideoIngestConfig(IngestConfig):
    """Crawl a video-text URL list into WebDataset shards of sampled frames (image: how frames are resized)."""

    fetch: VideoFetchConfig = Field(default_factory=VideoFetchConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
