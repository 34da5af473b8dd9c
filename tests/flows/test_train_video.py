"""The train_video flow end to end: video shards -> a video-text checkpoint, its run and retrieval in the store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clipline.pipelines.config import StoreConfig, VideoTrainConfig
from clipline.pipelines.store.query import run_query
from support.video_order import order_samples, write_video_shards

pytestmark = pytest.mark.e2e


def test_train_video_flow_records_the_run_and_its_retrieval(prefect_server, tmp_path):
    from clipline.flows.train_video import train_video

    write_video_shards(tmp_path / "train", order_samples(4, gap=4, step=6, held_out=False), per_shard=40)
    write_video_shards(tmp_path / "val", order_samples(4, gap=4, step=6, held_out=True), per_shard=1000)
    results = str(tmp_path / "results")
    config = VideoTrainConfig(data=f"{tmp_path}/train/00000.tar", val_data=f"{tmp_path}/val/00000.tar",
                              output_uri=str(tmp_path / "run"), steps=2, batch_size=8, warmup=1, workers=0,
                              checkpoint_every=2, data_workers=0, head="lstm", num_frames=2, val_batches=1,
                              store=StoreConfig(results_uri=results))
    summary = train_video(config)
    assert summary["steps"] == 2 and summary["checkpoint"].endswith("step-00000002")
    assert 0 <= summary["val_text_to_video_r1"] <= 1
    assert run_query(results, "SELECT flow, status FROM runs").rows == [("train_video", "completed")]
    clipline = shutil.which("clipline", path=str(Path(sys.executable).parent))
    out = subprocess.run([clipline, "sql", "--results-uri", results, "--format", "json", "--query", "video_heads"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert (row["head"], row["frames"], row["step"], row["clips"]) == ("lstm", 2, 2, 8)
