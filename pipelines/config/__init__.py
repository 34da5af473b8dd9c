"""Every config is declared here, once, as a pydantic model.

Prefect validates these as flow parameters, and the CLI builds its options
from the same fields (each `description` becomes the `--help` text), so a
setting is named, typed, defaulted and documented in one place. Each family
has a module of this package (base, ingest, train, evaluate, distance,
pipeline); callers import them from `pipelines.config`.
"""

from clipline.pipelines.config.base import (
                                   DEFAULT_HOME,
                                   HOME_ENV,
                                   Config,
                                   QueryLimits,
                                   StoreConfig,
                                   default_cache_dir,
                                   default_results_uri,
                                   home_uri,
)
from clipline.pipelines.config.caption import DECODE_METHODS, CaptionConfig, GenerateConfig
from clipline.pipelines.config.captioner import CaptionerTrainConfig
from clipline.pipelines.config.curate import DEDUP_METHODS, CurateConfig
from clipline.pipelines.config.distance import (
                                   EMBEDDING_SPACES,
                                   DatasetDistanceConfig,
                                   DistanceConfig,
                                   FastTextConfig,
                                   TransportConfig,
)
from clipline.pipelines.config.evaluate import PROMPT_STRATEGIES, EvalConfig
from clipline.pipelines.config.ingest import (
                                   FetchConfig,
                                   ImageConfig,
                                   IngestConfig,
                                   ReaderConfig,
                                   VideoConfig,
                                   VideoFetchConfig,
                                   VideoIngestConfig,
)
from clipline.pipelines.config.pipeline import PipelineConfig, ReportConfig, default_pipeline_workdir
from clipline.pipelines.config.train import (
                                   TRAIN_KINDS,
                                   AnyTrainConfig,
                                   CocaTrainConfig,
                                   TemporalHead,
                                   TrainConfig,
                                   VideoTrainConfig,
)

__all__ = [
    "CaptionerTrainConfig",
    "DECODE_METHODS", "TRAIN_KINDS", "AnyTrainConfig", "CaptionConfig", "CocaTrainConfig",
    "DEDUP_METHODS", "DEFAULT_HOME", "EMBEDDING_SPACES", "HOME_ENV", "PROMPT_STRATEGIES", "Config",
    "CurateConfig",
    "DatasetDistanceConfig",
    "DistanceConfig", "EvalConfig", "FastTextConfig", "FetchConfig", "GenerateConfig", "ImageConfig", "IngestConfig",
    "PipelineConfig", "QueryLimits", "ReaderConfig", "ReportConfig", "StoreConfig", "TemporalHead", "TrainConfig",
    "TransportConfig", "VideoConfig", "VideoFetchConfig", "VideoIngestConfig", "VideoTrainConfig",
    "default_cache_dir", "default_pipeline_workdir", "default_results_uri", "home_uri",
]
