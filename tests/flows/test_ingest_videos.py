"""The ingest_videos flow end to end: Prefect + Ray + real clips over the local HTTP server + the results store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipline.pipelines import storage
from clipline.pipelines.config import (
    ImageConfig,
    ReaderConfig,
    StoreConfig,
    VideoConfig,
    VideoFetchConfig,
    VideoIngestConfig,
)
from clipline.pipelines.store.query import named_query_sql, run_query
from support import videos

pytestmark = pytest.mark.e2e

CLIPS = {"bikes.mp4": videos.clip("bikes"), "carphone.mp4": videos.clip("carphone"),
         "bikes.webm": videos.webm_clip(), "audio.mp4": videos.audio_only_mp4()}
ROWS = [  # (path, start, end) cycled over the shards
    ("/static/bikes.mp4", 2, 4), ("/static/carphone.mp4", "", ""), ("/static/bikes.webm", "", ""),
    ("/static/audio.mp4", "", ""), ("/static/bikes.mp4", 7.5, 9), ("/404", "", "")]


@pytest.fixture(scope="module")
def served(http_server):
    for name, data in CLIPS.items():
        http_server.add_file(name, data, "video/webm" if name.endswith("webm") else "video/mp4")
    return http_server


def write_url_list(server, path: Path, num_rows: int, slow_every: int = 0) -> str:
    lines = ["url,caption,start,end"]
    for i in range(num_rows):
        url_path, start, end = ROWS[i % len(ROWS)]
        if slow_every and i % slow_every == 0:
            url_path, start, end = "/slow.jpg", "", ""  # trickles past the time limit: keeps a shard busy
        lines.append(f"{server.url(url_path)}?i={i},clip number {i},{start},{end}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def ingested(prefect_server, ray_cluster, served, tmp_path_factory):
    from clipline.flows.ingest_videos import ingest_videos

    root = tmp_path_factory.mktemp("ingest-videos")
    config = VideoIngestConfig(
        reader=ReaderConfig(url_list_uri=write_url_list(served, root / "urls.csv", 12), samples_per_shard=6),
        output_uri=str(root / "out"), workers=2,
        fetch=VideoFetchConfig(allowed_networks=["127.0.0.0/8"], timeout_s=10, retries=0),
        image=ImageConfig(image_size=64, resize_mode="center_crop"), video=VideoConfig(num_frames=4),
        store=StoreConfig(results_uri=str(root / "results")))
    return config, ingest_videos(config)


def test_flow_counts_every_row_and_indexes_the_shards(ingested):
    config, summary = ingested
    assert (summary["shards"], summary["samples"], summary["successes"]) == (2, 12, 8)
    assert summary["failed_to_resize"] == 2 and summary["failed_to_download"] == 2
    sizes = json.loads(storage.read_text(storage.join(config.output_uri, "sizes.json")))
    assert sizes == {"00000.tar": 4, "00001.tar": 4}


def test_shard_parquet_has_duration_and_frame_count(ingested):
    config, _ = ingested
    rows = pq.read_table(storage.join(config.output_uri, "00000.parquet")).to_pylist()
    successes = [r for r in rows if r["status"] == "success"]
    assert [r["num_frames"] for r in successes] == [4] * 4
    assert sorted(round(r["duration"], 2) for r in successes) == [1.5, 2.0, 2.0, 4.0]
    assert all(r["duration"] is None and r["num_frames"] is None for r in rows if r["status"] != "success")


def test_results_store_records_the_video_run(ingested):
    config, _ = ingested
    results = config.store.results_uri
    assert run_query(results, "SELECT flow, status FROM runs").rows == [("ingest_videos", "completed")]
    errors = {r[2]: r[3] for r in run_query(results, named_query_sql("top_errors")).rows}
    assert errors == {"http error 404": 2, "no video stream: the container holds audio only": 2}


def dataset_state(out: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    """(sorted (tar member, sha256 of its bytes) but JSON, sorted parquet (key, status, error))."""
    members, statuses = [], []
    for tar_uri in storage.glob(storage.join(out, "*.tar")):
        with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(tar_uri))) as tar:
            members += [(m.name, hashlib.sha256(tar.extractfile(m).read()).hexdigest())
                        for m in tar if not m.name.endswith(".json")]
    for uri in storage.glob(storage.join(out, "*.parquet")):
        table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
        statuses += list(zip(*(table[c].to_pylist() for c in ("key", "status", "error_message")), strict=True))
    return sorted(members), sorted(statuses)


def clipline_ingest_videos(url_list: str, out: str, results: str, workers: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "clipline"), "ingest-videos", url_list, "--out", out,
               "--results-uri", results, "--samples-per-shard", "4", "--workers", str(workers),
               "--allowed-networks", "127.0.0.0/8", "--timeout-s", "3", "--retries", "0",
               "--image-size", "64", "--resize-mode", "center_crop", "--num-frames", "4"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_video_crawl_killed_with_sigkill_and_rerun_equals_an_uninterrupted_run(
        prefect_server, ray_cluster, served, tmp_path):
    url_list = write_url_list(served, tmp_path / "urls.csv", 16, slow_every=4)  # 4 shards, each >= 3 s
    killed_out, reference_out = str(tmp_path / "killed"), str(tmp_path / "reference")
    victim = clipline_ingest_videos(url_list, killed_out, str(tmp_path / "r1"), workers=1)
    deadline = time.time() + 240
    while not storage.glob(storage.join(killed_out, "*_stats.json")):
        assert victim.poll() is None, victim.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no shard committed in time"
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert len(storage.glob(storage.join(killed_out, "*_stats.json"))) < 4, "finished before it could be killed"

    for out, results in ((killed_out, tmp_path / "r1"), (reference_out, tmp_path / "r2")):
        run = clipline_ingest_videos(url_list, out, str(results), workers=2)
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err.decode()[-3000:]
    killed, reference = dataset_state(killed_out), dataset_state(reference_out)
    assert killed == reference, (set(killed[0]) ^ set(reference[0]), set(killed[1]) ^ set(reference[1]))
    assert sum(name.endswith(".f000.jpg") for name, _ in killed[0]) == 7  # 2 + 2 + 1 + 2 clips per shard
    assert not [p for p in os.listdir(killed_out) if ".tmp-" in p], "a partial file was left behind"
