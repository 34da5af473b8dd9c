"""The pipeline's stage configs and the checks made before any stage starts."""

from __future__ import annotations

import pytest

from clipline.pipelines.config import PipelineConfig, VideoTrainConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.stages import STAGE_DEPENDS, preflight, stage_configs
from support.net import free_port


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    for name in ("images.csv", "held-out.csv", "videos.csv"):
        (tmp_path / name).write_text("url,caption\n")
    return PipelineConfig(image_url_list=str(tmp_path / "images.csv"), eval_url_list=str(tmp_path / "held-out.csv"),
                          video_url_list=str(tmp_path / "videos.csv"), classnames=["a", "b"],
                          workdir=str(tmp_path / "work"), steps=40)


def test_every_stage_gets_a_config_wired_to_the_others(config, tmp_path):
    stages = stage_configs(config)
    assert list(stages) == ["ingest_images", "ingest_held_out", "train_clip", "evaluate", "ingest_videos",
                            "train_video", "dataset_distance"]
    assert all(dep in stages or dep == "curate" for name in stages for dep in STAGE_DEPENDS[name])  # curate: optional
    work = tmp_path / "work"
    assert stages["train_clip"].data == str(work / "datasets" / "images")
    assert stages["evaluate"].checkpoints == [str(work / "runs" / "clip")]
    video = stages["train_video"]
    assert isinstance(video, VideoTrainConfig) and video.init == str(work / "runs/clip/checkpoints/step-00000040")
    assert [d.split("=")[0] for d in stages["dataset_distance"].datasets] == ["images", "held-out", "videos"]


def test_fan_out_workers_reach_the_evaluate_and_distance_stages(config):
    stages = stage_configs(config.model_copy(update={"eval_workers": 2, "distance_workers": 3}))
    assert (stages["evaluate"].workers, stages["dataset_distance"].workers) == (2, 3)
    assert stage_configs(config)["dataset_distance"].workers == 0


def test_without_a_video_list_the_video_stages_are_left_out(config):
    stages = stage_configs(config.model_copy(update={"video_url_list": None}))
    assert "ingest_videos" not in stages and "train_video" not in stages


def test_a_curate_block_adds_the_stage_and_training_reads_what_it_keeps(config, tmp_path):
    with_curate = PipelineConfig.model_validate(config.model_dump() | {"curate": {"dedup": "phash",
                                                                                "min_caption_words": 3}})
    stages = stage_configs(with_curate)
    assert list(stages)[:4] == ["ingest_images", "ingest_held_out", "curate", "train_clip"]
    assert set(STAGE_DEPENDS["curate"]) == {"ingest_images", "ingest_held_out"}
    assert "curate" in STAGE_DEPENDS["train_clip"]
    work, curate = tmp_path / "work", stages["curate"]
    assert curate.data == str(work / "datasets" / "images")
    assert (curate.dedup, curate.min_caption_words) == ("phash", 3)
    assert curate.decontaminate == [f"held-out={work / 'datasets' / 'held-out'}"]
    curated = curate.output_uri.rsplit("/", 1)[1]
    assert curated.startswith("curated-") and stages["train_clip"].data == str(work / "datasets" / curated)
    assert stages["train_clip"].output_uri == str(work / "runs" / f"clip-{curated}")  # a run per curated dataset
    assert stages["evaluate"].checkpoints == [stages["train_clip"].output_uri]
    assert stages["train_video"].output_uri == str(work / "runs" / f"video-transformer-{curated}")
    other = stage_configs(PipelineConfig.model_validate(config.model_dump() | {"curate": {"dedup": "exact"}}))
    assert other["curate"].output_uri != curate.output_uri
    kept_out = stage_configs(PipelineConfig.model_validate(
        config.model_dump() | {"curate": {"decontaminate_held_out": False}}))["curate"]
    assert kept_out.decontaminate == []


def test_a_bad_curate_block_fails_before_any_stage(config):
    with pytest.raises(ValueError, match="needs --scorer"):
        stage_configs(PipelineConfig.model_validate(config.model_dump() | {"curate": {"min_clip_score": 0.3}}))
    with pytest.raises(ValueError, match="curate.output_uri"):  # the pipeline decides where curated shards go
        PipelineConfig.model_validate(config.model_dump() | {"curate": {"output_uri": "/elsewhere"}})


def test_a_missing_url_list_is_reported_before_any_stage(config, tmp_path):
    (tmp_path / "held-out.csv").unlink()
    with pytest.raises(ClipLineError, match="held-out.csv does not exist"):
        preflight(config)


def test_an_unreachable_ray_cluster_is_reported_before_any_stage(config, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    with pytest.raises(ClipLineError, match="Ray cluster at RAY_ADDRESS=127.0.0.1:.* does not answer"):
        preflight(config)


def test_unwritable_storage_is_reported_before_any_stage(config, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ClipLineError, match="s3://no-such-bucket"):
        preflight(config.model_copy(update={"workdir": "s3://no-such-bucket/work"}))


def test_the_pipeline_summary_names_each_stages_key_figures():
    from clipline.tasks.pipeline import _figure

    evaluation = {"results": [{"task": "zeroshot", "strategy": "ensemble", "metrics": {"acc1": 0.8123}},
                              {"task": "retrieval", "strategy": None, "metrics": {"image_retrieval_recall@1": 0.1}}]}
    distances = {"distances": [{"space": "clip_image", "dataset_a": "a", "dataset_b": "a", "excess": 0.0},
                               {"space": "clip_image", "dataset_a": "a", "dataset_b": "b", "excess": 0.25}]}
    assert _figure("evaluate", evaluation) == "zeroshot ensemble acc1 0.812"
    assert _figure("dataset_distance", distances) == "clip_image a~b excess 0.25"
    assert _figure("train_clip", {"final_loss": 2.5, "steps": 300, "run_id": "x"}) == "final_loss 2.5, steps 300"


def test_the_caption_block_adds_a_coca_run_and_captions_of_the_held_out_images(config, tmp_path):
    from clipline.pipelines.config import CaptionConfig, CocaTrainConfig

    stages = stage_configs(PipelineConfig(**{**config.model_dump(), "caption": {"steps": 30,
                                                                                "generate": {"method": "greedy"}}}))
    assert list(stages)[-2:] == ["train_coca", "caption"]
    assert all(dep in stages or dep == "curate" for name in stages for dep in STAGE_DEPENDS[name])  # curate: optional
    coca, caption = stages["train_coca"], stages["caption"]
    work = tmp_path / "work"
    assert isinstance(coca, CocaTrainConfig) and coca.steps == 30 and coca.model == "clipline-tiny-coca"
    assert coca.data == str(work / "datasets" / "images") and coca.output_uri == str(work / "runs" / "coca")
    assert isinstance(caption, CaptionConfig) and caption.checkpoint == coca.output_uri
    assert caption.data == str(work / "datasets" / "held-out") and caption.generate.method == "greedy"
    assert "train_coca" not in stage_configs(config)
