"""The ingest_images flow end to end: Prefect + Ray + a real HTTP server + the results store."""

from __future__ import annotations

import io
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
from clipline.pipelines.config import FetchConfig, ImageConfig, IngestConfig, ReaderConfig, StoreConfig
from clipline.pipelines.store.query import named_query_sql, run_query

pytestmark = pytest.mark.e2e

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera"]
FAULTS = ["/404", "/noai.jpg", "/html.jpg"]


def write_url_list(server, path: Path, num_shards: int, per_shard: int, slow_per_shard: int = 0) -> str:
    lines = ["url,caption"]
    for shard in range(num_shards):
        for i in range(per_shard):
            if i < slow_per_shard:
                path_ = "/slow.jpg"
            elif i % 5 == 4:
                path_ = FAULTS[(shard + i) % len(FAULTS)]
            else:
                path_ = f"/img/{PHOTOS[(shard + i) % len(PHOTOS)]}.jpg?s={shard}&i={i}"
            lines.append(f"{server.url(path_)},a photo number {shard}-{i}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def config_for(url_list: str, out: str, results: str, per_shard: int, **fetch) -> IngestConfig:
    return IngestConfig(
        reader=ReaderConfig(url_list_uri=url_list, samples_per_shard=per_shard), output_uri=out, workers=2,
        fetch=FetchConfig(allowed_networks=["127.0.0.0/8"], timeout_s=10, retries=0, **fetch),
        image=ImageConfig(image_size=64, resize_mode="center_crop"), store=StoreConfig(results_uri=results))


def dataset_state(out: str) -> tuple[list[str], list[tuple]]:
    """(sorted tar member names, sorted parquet (key, status, error)) of a dataset folder."""
    members, statuses = [], []
    for tar_uri in storage.glob(storage.join(out, "*.tar")):
        with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(tar_uri))) as tar:
            members += [m.name for m in tar if not m.name.endswith(".json")]
    for uri in storage.glob(storage.join(out, "*.parquet")):
        table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
        statuses += list(zip(*(table[c].to_pylist() for c in ("key", "status", "error_message")), strict=True))
    return sorted(members), sorted(statuses)


@pytest.fixture(scope="module")
def ingested(prefect_server, ray_cluster, http_server, tmp_path_factory):
    from clipline.flows.ingest import ingest_images

    root = tmp_path_factory.mktemp("ingest")
    url_list = write_url_list(http_server, root / "urls.csv", num_shards=3, per_shard=10)
    config = config_for(url_list, str(root / "out"), str(root / "results"), per_shard=10)
    return config, ingest_images(config)


def test_flow_summary_counts_every_row(ingested):
    config, summary = ingested
    assert (summary["shards"], summary["samples"]) == (3, 30)
    assert summary["successes"] + summary["failed_to_download"] + summary["failed_to_resize"] == 30
    assert summary["successes"] == 24 and summary["top_errors"]["http error 404"] >= 1


def test_sizes_json_matches_the_tars(ingested):
    config, summary = ingested
    sizes = __import__("json").loads(storage.read_text(storage.join(config.output_uri, "sizes.json")))
    members, _ = dataset_state(config.output_uri)
    assert sizes == {f"{i:05d}.tar": 8 for i in range(3)}
    assert sum(sizes.values()) == len([m for m in members if m.endswith(".jpg")])


def test_results_store_answers_domain_and_error_questions(ingested):
    config, _ = ingested
    results = config.store.results_uri
    by_domain = run_query(results, named_query_sql("success_by_domain")).rows
    assert [(r[1], r[2], r[3]) for r in by_domain] == [("127.0.0.1", 30, 24)]
    errors = {r[2]: r[3] for r in run_query(results, named_query_sql("top_errors")).rows}
    assert errors == {"http error 404": 2, "opted out: X-Robots-Tag noai": 2,
                      errors_key(errors, "not an image"): 2}
    runs = run_query(results, "SELECT flow, status FROM runs").rows
    assert runs == [("ingest_images", "completed")]


def errors_key(errors: dict, prefix: str) -> str:
    return next(k for k in errors if k.startswith(prefix))


def test_rerun_skips_committed_shards(ingested, http_server):
    from clipline.flows.ingest import ingest_images

    config, first = ingested
    before = http_server.hits("/img/coffee.jpg")
    again = ingest_images(config)
    assert again["shards_skipped"] == 3 and again["successes"] == first["successes"]
    assert http_server.hits("/img/coffee.jpg") == before


def test_bad_config_fails_before_work(prefect_server, tmp_path):
    from clipline.flows.ingest import ingest_images

    with pytest.raises(Exception, match="does not exist"):
        ingest_images(config_for(str(tmp_path / "missing.csv"), str(tmp_path / "o"), str(tmp_path / "r"), 5))
    assert not (tmp_path / "o").exists()


def clipline_ingest(url_list: str, out: str, results: str, per_shard: int, workers: int = 1) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "clipline"), "ingest", url_list, "--out", out,
               "--results-uri", results, "--samples-per-shard", str(per_shard), "--workers", str(workers),
               "--allowed-networks", "127.0.0.0/8", "--timeout-s", "5", "--retries", "0",
               "--image-size", "64", "--resize-mode", "center_crop"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_crawl_killed_with_sigkill_and_rerun_equals_an_uninterrupted_run(
        prefect_server, ray_cluster, http_server, tmp_path):
    url_list = write_url_list(http_server, tmp_path / "urls.csv", num_shards=6, per_shard=8, slow_per_shard=2)
    killed_out, reference_out = str(tmp_path / "killed"), str(tmp_path / "reference")
    victim = clipline_ingest(url_list, killed_out, str(tmp_path / "r1"), per_shard=8)
    deadline = time.time() + 240
    while not storage.glob(storage.join(killed_out, "*_stats.json")):
        assert victim.poll() is None, victim.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no shard committed in time"
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    committed_at_kill = len(storage.glob(storage.join(killed_out, "*_stats.json")))
    assert committed_at_kill < 6, "the crawl finished before it could be killed"

    runs = [clipline_ingest(url_list, out, str(results), per_shard=8, workers=2)  # the resume and a reference,
            for out, results in ((killed_out, tmp_path / "r1"), (reference_out, tmp_path / "r2"))]  # side by side
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err.decode()[-3000:]
    killed, reference = dataset_state(killed_out), dataset_state(reference_out)
    assert killed == reference, (set(killed[0]) ^ set(reference[0]), set(killed[1]) ^ set(reference[1]))
    assert len(killed[0]) == len(set(killed[0])), "a sample was stored twice"
    assert not [p for p in os.listdir(killed_out) if ".tmp-" in p], "a partial file was left behind"


def test_open_clip_trainer_reads_the_shards_without_num_samples(ingested, tmp_path):
    config, _ = ingested
    repo = Path(__file__).resolve().parents[2]
    old_webdataset = Path(sys.executable).parents[1] / "opt" / "webdataset-0.2.86"
    assert old_webdataset.is_dir(), "run `make install`: it puts webdataset 0.2.86 aside for open_clip's trainer"
    command = [sys.executable, str(repo / "tests" / "support" / "openclip_train.py"),
               "--train-data", f"{config.output_uri}/{{00000..00002}}.tar", "--dataset-type", "webdataset",
               "--model", "clipline-tiny", "--batch-size", "8", "--epochs", "1", "--device", "cpu",
               "--precision", "fp32", "--workers", "1", "--warmup", "1", "--lr", "1e-4",
               "--logs", str(tmp_path), "--name", "read-check", "--save-frequency", "0", "--report-to", ""]
    env = {**os.environ, "PYTHONPATH": str(old_webdataset)}
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "Train Epoch: 0" in log and "train-num-samples" not in log
